-- Retention and legal hold per tenant (issue 21): projected from tenant.retention_set and
-- tenant.legal_hold_set / _released. retention_days null: as long as the tier allows.
alter table tenants add column retention_days integer;
alter table tenants add column legal_hold_reason text;
alter table tenants add column legal_hold_since timestamptz;
