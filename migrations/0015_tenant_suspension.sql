-- A platform operator suspends a tenant (issue 19): since when and why, beside its status, so the
-- operator's list says it without reading the tenant's log.
alter table tenants add column suspended_at timestamptz, add column suspension_reason text;
