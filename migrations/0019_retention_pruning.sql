-- Retention (issue 21): a tenant's oldest events may be removed, but only as a prefix of its log that
-- ends at a signed checkpoint, recorded for good in audit_prunes, so the log that remains starts from
-- a signed anchor. Every other UPDATE, DELETE and TRUNCATE of events is still refused.

-- One row per prune, append-only: the range removed (dense: from_seq is 1 or the previous prune's
-- upto_seq + 1), the checkpoint it ends at, and the archive written first, if any.
create table audit_prunes (
  tenant_id        text        not null,
  upto_seq         bigint      not null,
  from_seq         bigint      not null,
  chain_hash       text        not null,
  events           bigint      not null,
  upto_occurred_at timestamptz not null,
  archive_file     text,
  archive_sha256   text,
  pruned_at        timestamptz not null default now(),
  primary key (tenant_id, upto_seq),
  check (from_seq >= 1 and upto_seq >= from_seq and events = upto_seq - from_seq + 1)
);

create function keyplane_refuse_prune_change() returns trigger language plpgsql as $$
begin
  raise exception 'audit prunes are append-only: % refused', tg_op using errcode = 'P0001';
end;
$$;
create trigger audit_prunes_append_only_rows before update or delete on audit_prunes
  for each row execute function keyplane_refuse_prune_change();
create trigger audit_prunes_append_only_truncate before truncate on audit_prunes
  for each statement execute function keyplane_refuse_prune_change();

-- A prune record is the only thing that lets events be deleted, so whoever inserts one (the prune
-- function or anything else) must name a valid prune: the next range of the tenant's log, ending at
-- one of its signed checkpoints whose chain hash is the event's, with no legal hold on the tenant.
-- The hold's row is read FOR SHARE: a hold being set waits for this prune, or this prune sees it.
create function keyplane_check_prune() returns trigger language plpgsql
set search_path from current
as $$
declare
  v_previous bigint;
  v_hold text;
begin
  select coalesce(max(p.upto_seq), 0) into v_previous from audit_prunes p where p.tenant_id = new.tenant_id;
  if new.from_seq <> v_previous + 1 then
    raise exception 'a prune continues the previous one: it starts at %, not %', v_previous + 1, new.from_seq using errcode = 'P0001';
  end if;
  if not exists (select 1 from audit_checkpoints c join events e on e.tenant_id = c.tenant_id and e.tenant_seq = c.tenant_seq
                  where c.tenant_id = new.tenant_id and c.tenant_seq = new.upto_seq and c.chain_hash = new.chain_hash and e.chain_hash = new.chain_hash) then
    raise exception 'a prune ends at a signed checkpoint of the log: none at %', new.upto_seq using errcode = 'P0001';
  end if;
  select t.legal_hold_reason into v_hold from tenants t where t.tenant_id = new.tenant_id for share;
  if v_hold is not null then
    raise exception 'the tenant is under legal hold: nothing of its log is pruned' using errcode = 'P0001';
  end if;
  return new;
end;
$$;
create trigger audit_prunes_valid before insert on audit_prunes
  for each row execute function keyplane_check_prune();

-- Events: UPDATE and TRUNCATE are refused as before; a DELETE passes only when the rows it removed
-- lie, per tenant, inside one recorded prune of that tenant. Checked once per statement on the rows
-- it removed (a transition table; on Citus per shard, by an equality on the tenant), not per row.
drop trigger events_append_only_rows on events;
create trigger events_append_only_rows before update on events
  for each row execute function keyplane_refuse_event_change();

create function keyplane_check_event_delete() returns trigger language plpgsql
set search_path from current
as $$
declare
  r record;
begin
  for r in select o.tenant_id, min(o.tenant_seq) as lo, max(o.tenant_seq) as hi from pruned_rows o group by o.tenant_id loop
    if not exists (select 1 from audit_prunes p where p.tenant_id = r.tenant_id and p.from_seq <= r.lo and r.hi <= p.upto_seq) then
      raise exception 'events are append-only: DELETE refused' using errcode = 'P0001';
    end if;
  end loop;
  return null;
end;
$$;
create trigger events_delete_only_pruned after delete on events referencing old table as pruned_rows
  for each statement execute function keyplane_check_event_delete();

-- The one way to prune: records the prune (checked above) and removes exactly its range, in one
-- statement of the caller's transaction. Answers what it removed.
create function keyplane_prune_prefix(p_tenant text, p_upto bigint, p_archive_file text, p_archive_sha256 text) returns jsonb
language plpgsql
set search_path from current
as $$
declare
  v_from bigint;
  v_chain text;
  v_occurred timestamptz;
  v_deleted bigint;
begin
  select coalesce(max(p.upto_seq), 0) + 1 into v_from from audit_prunes p where p.tenant_id = p_tenant;
  select e.chain_hash, e.occurred_at into v_chain, v_occurred from events e where e.tenant_id = p_tenant and e.tenant_seq = p_upto;
  if v_chain is null then
    raise exception 'no event % in the log to prune up to', p_upto using errcode = 'P0001';
  end if;
  insert into audit_prunes (tenant_id, upto_seq, from_seq, chain_hash, events, upto_occurred_at, archive_file, archive_sha256)
  values (p_tenant, p_upto, v_from, v_chain, p_upto - v_from + 1, v_occurred, p_archive_file, p_archive_sha256);
  delete from events e where e.tenant_id = p_tenant and e.tenant_seq >= v_from and e.tenant_seq <= p_upto;
  get diagnostics v_deleted = row_count;
  if v_deleted <> p_upto - v_from + 1 then
    raise exception 'the log is not dense: % events between % and %', v_deleted, v_from, p_upto using errcode = 'P0001';
  end if;
  return jsonb_build_object('fromSequence', v_from, 'toSequence', p_upto, 'events', v_deleted, 'chainHash', v_chain, 'occurredAt', v_occurred);
end;
$$;

-- A stream's state where its pruned events left it (its decider's fold, or none for streams without
-- one), so commands on it go on from there: its later events are folded onto this.
create table stream_snapshots (
  tenant_id   text    not null,
  stream_type text    not null,
  stream_id   text    not null,
  version     integer not null,
  state       jsonb,
  anchor_seq  bigint  not null,
  primary key (tenant_id, stream_type, stream_id)
);

-- The read tables' rows of a tenant as they were at its head `snapshot_seq` (at or after the latest
-- prune's end): a rebuild restores them and replays the events after it. One per tenant, replaced.
create table projection_snapshots (
  tenant_id    text        not null primary key,
  snapshot_seq bigint      not null,
  anchor_seq   bigint      not null,
  taken_at     timestamptz not null default now()
);
create table projection_snapshot_rows (
  tenant_id  text    not null,
  table_name text    not null,
  row_no     integer not null,
  row_data   jsonb   not null,
  primary key (tenant_id, table_name, row_no)
);

-- Which process prunes a tenant now: a lease (DB clock), so one process at a time writes its archive.
create table retention_leases (
  tenant_id   text        not null primary key,
  lease_owner text        not null,
  lease_until timestamptz not null
);

do $$
declare t text;
begin
  foreach t in array array['audit_prunes', 'stream_snapshots', 'projection_snapshots', 'projection_snapshot_rows', 'retention_leases'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;

-- The append: as in 0014, and a stream's version comes from its snapshot when none of its events remain.
create or replace function keyplane_append_tenant(p_tenant text, p_genesis text, p_appends jsonb) returns jsonb
language plpgsql
set search_path from current
as $$
declare
  v_scope text := current_setting('keyplane.tenant_id', true);
  v_seq bigint;
  v_chain text;
  v_versions jsonb := '{}'::jsonb;
  v_append jsonb;
  v_event jsonb;
  v_key text;
  v_found integer;
  v_expected integer;
  v_n integer;
  v_appended jsonb;
  v_results jsonb := '[]'::jsonb;
  v_projections jsonb := '[]'::jsonb;
  v_written boolean := false;
begin
  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', p_tenant, true);
  end if;

  select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  if not found then
    insert into tenant_heads (tenant_id, last_seq, last_chain_hash) values (p_tenant, 0, p_genesis) on conflict (tenant_id) do nothing;
    select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  end if;

  for v_append in select value from jsonb_array_elements(p_appends) loop
    v_key := (v_append->>'stream_type') || chr(31) || (v_append->>'stream_id');
    if v_versions ? v_key then
      v_found := (v_versions->>v_key)::integer;
    else
      -- A stream whose events were all pruned goes on from its snapshot's version (asked only then).
      select coalesce(max(e.stream_version),
                      (select s.version from stream_snapshots s
                        where s.tenant_id = p_tenant and s.stream_type = v_append->>'stream_type' and s.stream_id = v_append->>'stream_id'),
                      0) into v_found from events e
       where e.tenant_id = p_tenant and e.stream_type = v_append->>'stream_type' and e.stream_id = v_append->>'stream_id';
    end if;
    v_expected := (v_append->>'expected_version')::integer;
    if v_found <> v_expected then
      v_versions := jsonb_set(v_versions, array[v_key], to_jsonb(v_found));
      v_results := v_results || jsonb_build_array(jsonb_build_object('version', v_found));
      continue;
    end if;
    v_n := 0;
    v_appended := '[]'::jsonb;
    for v_event in select value from jsonb_array_elements(v_append->'events') loop
      v_n := v_n + 1;
      v_seq := v_seq + 1;
      v_chain := encode(sha256(convert_to(v_chain || ':' || v_seq::text || ':' || (v_event->>'content_hash'), 'UTF8')), 'hex');
      insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version,
                          data, metadata, occurred_at, content_hash, chain_hash)
      values (p_tenant, v_seq, v_append->>'stream_type', v_append->>'stream_id', v_expected + v_n, (v_event->>'event_id')::uuid,
              v_event->>'event_type', (v_event->>'schema_version')::integer, v_event->'data', v_append->'metadata',
              (v_append->>'occurred_at')::timestamptz, v_event->>'content_hash', v_chain);
      v_appended := v_appended || jsonb_build_object('seq', v_seq, 'recorded_at', now(), 'chain_hash', v_chain, 'version', v_expected + v_n);
    end loop;
    v_versions := jsonb_set(v_versions, array[v_key], to_jsonb(v_expected + v_n));
    v_results := v_results || jsonb_build_array(jsonb_build_object('appended', v_appended));
    v_projections := v_projections || (v_append->'projections');
    v_written := true;
  end loop;

  if v_written then
    update tenant_heads set last_seq = v_seq, last_chain_hash = v_chain where tenant_id = p_tenant;
    if jsonb_array_length(v_projections) > 0 then
      perform keyplane_execute(v_projections);
    end if;
  end if;

  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', '', true);
  end if;
  return v_results;
end;
$$;
