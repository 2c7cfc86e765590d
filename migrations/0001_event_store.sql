-- The event store: an append-only, per-tenant hash-chained log.
-- Every tenant-owned table has a primary key that begins with tenant_id (see DESIGN.md).

-- One row per tenant: the append locks it FOR UPDATE first, so per-tenant sequences are dense
-- and become visible in commit order.
create table tenant_heads (
  tenant_id       text primary key,
  last_seq        bigint not null default 0,
  last_chain_hash text not null
);

create sequence events_global_position;

create table events (
  tenant_id       text        not null,
  tenant_seq      bigint      not null,
  global_position bigint      not null default nextval('events_global_position'),
  stream_type     text        not null,
  stream_id       text        not null,
  stream_version  integer     not null,
  event_id        uuid        not null,
  event_type      text        not null,
  schema_version  integer     not null,
  data            jsonb       not null,
  metadata        jsonb       not null,
  occurred_at     timestamptz not null,
  recorded_at     timestamptz not null default now(),
  content_hash    text        not null,
  chain_hash      text        not null,
  primary key (tenant_id, tenant_seq),
  unique (tenant_id, stream_type, stream_id, stream_version),
  unique (tenant_id, event_id),
  check (tenant_seq > 0 and stream_version > 0)
);

create index events_tenant_type_seq on events (tenant_id, event_type, tenant_seq);
create index events_tenant_occurred on events (tenant_id, occurred_at);

-- Append-only in the database itself, whoever connects.
create function keyplane_refuse_event_change() returns trigger language plpgsql as $$
begin
  raise exception 'events are append-only: % refused', tg_op using errcode = 'P0001';
end;
$$;

create trigger events_append_only_rows before update or delete on events
  for each row execute function keyplane_refuse_event_change();
create trigger events_append_only_truncate before truncate on events
  for each statement execute function keyplane_refuse_event_change();
