-- The shape Citus can distribute (src/store/citus.ts distributes it; PostgreSQL and PGlite run the same
-- schema): every tenant table keyed by tenant_id, no unique key across tenants inside a tenant table,
-- no sequence shared by tenants, no trigger whose effect depends on the node it fires on.

-- 1. Global unique keys move to lookup tables of their own (reference tables on Citus). The key is the
-- primary key, so uniqueness holds across tenants whatever row-level security lets a transaction see.

-- One owner per GitHub installation: the live claim of each GitHub installation that is not revoked.
-- Kept by the installations projection; a rebuild derives it from the rebuilt installations.
create table github_installation_owners (
  external_id     text primary key,
  tenant_id       text not null,
  installation_id text not null
);
insert into github_installation_owners (external_id, tenant_id, installation_id)
  select external_id, tenant_id, installation_id from installations where platform = 'github' and status <> 'revoked';
drop index installations_github_owner;
drop index installations_by_external_id;
create index installations_by_external_id on installations (tenant_id, platform, external_id);

-- OAuth states: the callback knows only the state; its hash names the tenant's pending row. Pruned
-- with it, by the same expiry.
create table oauth_state_hashes (
  state_hash text        primary key,
  tenant_id  text        not null,
  request_id text        not null,
  expires_at timestamptz not null
);
create index oauth_state_hashes_expiry on oauth_state_hashes (expires_at);
insert into oauth_state_hashes (state_hash, tenant_id, request_id, expires_at) select state_hash, tenant_id, request_id, expires_at from oauth_states;
alter table oauth_states drop constraint oauth_states_state_hash_key;

-- Enrollment keys: a machine presents only its key; the prefix names the tenant's key row.
create table enrollment_key_prefixes (
  prefix    text primary key,
  tenant_id text not null,
  key_id    text not null
);
insert into enrollment_key_prefixes (prefix, tenant_id, key_id) select prefix, tenant_id, key_id from enrollment_keys;
alter table enrollment_keys drop constraint enrollment_keys_prefix_key;

do $$
declare t text;
begin
  foreach t in array array['github_installation_owners', 'oauth_state_hashes', 'enrollment_key_prefixes'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;

-- 2. No global order of events. A sequence on Citus hands each node its own range, so global_position
-- was neither one order nor exactly readable there. Each tenant's log is ordered by tenant_seq, and
-- projection rebuilds replay tenant by tenant (the one read model spanning tenants is derived).
drop index events_by_global_position;
alter table events drop column global_position;
drop sequence events_global_position;

-- 3. The append NOTIFY leaves the trigger: on Citus the trigger fires on the worker holding the
-- tenant's shard, where nobody listens (and a NOTIFY forbids the two-phase commit a transaction
-- spanning nodes needs). The append function notifies where no Citus is installed; elsewhere it says
-- so, and the appending transaction notifies on the node it began on (announceAppends.ts).
drop trigger tenant_heads_notify_append on tenant_heads;
drop function keyplane_notify_append();

-- 4. The append answers with one value (jsonb), so Citus can delegate the call to the node holding the
-- tenant: a function call alone in its SELECT, its distribution argument p_tenant. Its body is the
-- one of 0004: head lock, stream-version check, dense sequence, chain, insert.
drop function keyplane_append_events(text, text, text, integer, text, timestamptz, jsonb, jsonb);
create function keyplane_append_events(
  p_tenant text,
  p_stream_type text,
  p_stream_id text,
  p_expected_version integer,
  p_genesis text,
  p_occurred_at timestamptz,
  p_metadata jsonb,
  p_events jsonb -- [{event_id, event_type, schema_version, data, content_hash}, ...]
) returns jsonb -- {"version": found} on a version conflict, else {"appended": [{seq, recorded_at, chain_hash, version}, ...], "notified": bool}
language plpgsql
-- Its tables are found in the schema it was created in, also on a worker, whose session knows
-- nothing of the search_path the caller set.
set search_path from current
as $$
declare
  v_seq bigint;
  v_chain text;
  v_version integer;
  v_event jsonb;
  v_n integer := 0;
  v_recorded timestamptz;
  v_out jsonb := '[]'::jsonb;
begin
  select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  if not found then
    insert into tenant_heads (tenant_id, last_seq, last_chain_hash) values (p_tenant, 0, p_genesis) on conflict (tenant_id) do nothing;
    select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  end if;

  -- A statement of its own, after the lock: its snapshot sees every append of this tenant that committed before.
  select coalesce(max(e.stream_version), 0) into v_version from events e
   where e.tenant_id = p_tenant and e.stream_type = p_stream_type and e.stream_id = p_stream_id;
  if v_version <> p_expected_version then
    return jsonb_build_object('version', v_version);
  end if;

  for v_event in select value from jsonb_array_elements(p_events) loop
    v_n := v_n + 1;
    v_seq := v_seq + 1;
    v_chain := encode(sha256(convert_to(v_chain || ':' || v_seq::text || ':' || (v_event->>'content_hash'), 'UTF8')), 'hex');
    insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version,
                        data, metadata, occurred_at, content_hash, chain_hash)
    values (p_tenant, v_seq, p_stream_type, p_stream_id, p_expected_version + v_n, (v_event->>'event_id')::uuid,
            v_event->>'event_type', (v_event->>'schema_version')::integer, v_event->'data', p_metadata, p_occurred_at,
            v_event->>'content_hash', v_chain)
    returning events.recorded_at into v_recorded;
    v_out := v_out || jsonb_build_object('seq', v_seq, 'recorded_at', v_recorded, 'chain_hash', v_chain, 'version', p_expected_version + v_n);
  end loop;

  update tenant_heads set last_seq = v_seq, last_chain_hash = v_chain where tenant_id = p_tenant;
  -- The live feed's hint, "<tenant> <last sequence>", in this same round trip on PostgreSQL. Under
  -- Citus this runs on the tenant's worker, where no one listens: the caller notifies instead.
  if exists (select 1 from pg_extension where extname = 'citus') then
    return jsonb_build_object('appended', v_out, 'notified', false);
  end if;
  perform pg_notify('keyplane_events', p_tenant || ' ' || v_seq::text);
  return jsonb_build_object('appended', v_out, 'notified', true);
end;
$$;
