-- Platform-wide: the SHA-256 of each signed webhook body Keyplane accepted, for the delivery window.
-- GitHub's X-Hub-Signature-256 covers the body only: not X-GitHub-Delivery, nor X-GitHub-Event. A
-- captured body sent again under a new delivery id verifies like the original, so the body itself
-- is deduplicated too (the same answer as a redelivery: 200, duplicate, nothing appended).
--
-- Its own lookup table keyed by (provider, body hash): a delivery is tied to a tenant only once it is
-- mapped onto a claimed installation, and on Citus a unique key without tenant_id must live in a
-- table of its own. `expires_at` ends the row's window; an expired row counts for nothing and is
-- deleted by later deliveries.
create table webhook_payloads (
  provider       text        not null,
  payload_sha256 text        not null,
  delivery_id    text        not null,
  received_at    timestamptz not null,
  expires_at     timestamptz not null,
  primary key (provider, payload_sha256)
);
create index webhook_payloads_expiry on webhook_payloads (expires_at);

alter table webhook_payloads enable row level security;
alter table webhook_payloads force row level security;
create policy platform_only on webhook_payloads
  using (current_setting('keyplane.platform', true) = 'on')
  with check (current_setting('keyplane.platform', true) = 'on');
