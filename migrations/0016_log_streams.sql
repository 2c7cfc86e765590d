-- Log streams (issue 20): where each tenant's events are delivered.

-- Read model of log_stream.* events. `destination` is scheme://host/path (the full URL, which may
-- carry a token in its query, is kept with the secret).
create table log_streams (
  tenant_id          text        not null,
  log_stream_id      text        not null,
  name               text        not null,
  kind               text        not null check (kind in ('webhook', 'splunk', 'datadog')),
  destination        text        not null,
  settings           jsonb       not null,
  filter             jsonb       not null,
  secret_fingerprint text        not null,
  state              text        not null check (state in ('active', 'paused', 'deleted')),
  health             text        not null check (health in ('pending', 'healthy', 'degraded', 'error')),
  last_error         text,
  version            integer     not null,
  created_by         text        not null,
  created_at         timestamptz not null,
  updated_at         timestamptz not null,
  primary key (tenant_id, log_stream_id)
);

-- The destination's URL and secrets, encrypted with the keyring (AAD: tenant and stream), written by
-- the use case in the transaction that appends the event.
create table log_stream_secrets (
  tenant_id     text        not null,
  log_stream_id text        not null,
  key_id        text        not null,
  ciphertext    text        not null,
  updated_at    timestamptz not null,
  primary key (tenant_id, log_stream_id)
);
create index log_stream_secrets_by_key on log_stream_secrets (key_id);

-- Operational, not derived from events (a delivered batch is not an event; a health change is): the
-- cursor of each stream, and which process delivers it (a lease another process takes over when it
-- ends). The use cases set the cursor at creation and replay, and move `generation` whenever what a
-- deliverer holds is out of date (new destination, secret, filter, resume, replay).
create table log_stream_deliveries (
  tenant_id         text        not null,
  log_stream_id     text        not null,
  delivered_seq     bigint      not null,
  generation        integer     not null default 0,
  lease_owner       text,
  lease_until       timestamptz,
  attempts          integer     not null default 0,
  next_attempt_at   timestamptz,
  last_success_at   timestamptz,
  last_attempt_at   timestamptz,
  last_error        text,
  primary key (tenant_id, log_stream_id)
);
create index log_stream_deliveries_lease on log_stream_deliveries (lease_until);

do $$
declare t text;
begin
  foreach t in array array['log_streams', 'log_stream_secrets', 'log_stream_deliveries'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
