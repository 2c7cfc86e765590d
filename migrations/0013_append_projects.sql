-- The append in one statement that commits on its own (issue 17): the function now sets the tenant
-- scope itself, and runs the projection writes TypeScript compiled for the appended events
-- (src/store/projections/*.ts, values as literals) after inserting them, so that a lone append is one
-- round trip and the tenant head lock is held only while this statement runs. Writes to the lookup
-- tables (unique across tenants: on Citus a copy on every node, which a call delegated to the tenant's
-- node cannot write) stay with the caller, in the same transaction.
-- It no longer notifies: PostgreSQL commits notifying transactions one at a time, a global lock held
-- across the WAL flush, so every append would wait for the one before. The appending process sends
-- the hint after the commit (src/store/events/announceAppends.ts).
drop function keyplane_append_events(text, text, text, integer, text, timestamptz, jsonb, jsonb);
create function keyplane_append_events(
  p_tenant text,
  p_stream_type text,
  p_stream_id text,
  p_expected_version integer,
  p_genesis text,
  p_occurred_at timestamptz,
  p_metadata jsonb,
  p_events jsonb, -- [{event_id, event_type, schema_version, data, content_hash}, ...]
  p_projections text[] -- the projection writes, run in order after the insert
) returns jsonb -- {"version": found} on a version conflict, else {"appended": [{seq, recorded_at, chain_hash, version}, ...]}
language plpgsql
set search_path from current
as $$
declare
  v_scope text := current_setting('keyplane.tenant_id', true);
  v_seq bigint;
  v_chain text;
  v_version integer;
  v_event jsonb;
  v_n integer := 0;
  v_recorded timestamptz;
  v_out jsonb := '[]'::jsonb;
  v_statement text;
begin
  -- Row-level security sees this tenant for the rest of the call (the caller's scope is restored at
  -- the end: inside a platform transaction, say). Run as one statement, this is the whole transaction.
  perform set_config('keyplane.tenant_id', p_tenant, true);

  select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  if not found then
    insert into tenant_heads (tenant_id, last_seq, last_chain_hash) values (p_tenant, 0, p_genesis) on conflict (tenant_id) do nothing;
    select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  end if;

  -- A statement of its own, after the lock: its snapshot sees every append of this tenant that committed before.
  select coalesce(max(e.stream_version), 0) into v_version from events e
   where e.tenant_id = p_tenant and e.stream_type = p_stream_type and e.stream_id = p_stream_id;
  if v_version <> p_expected_version then
    perform set_config('keyplane.tenant_id', coalesce(v_scope, ''), true);
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

  foreach v_statement in array coalesce(p_projections, '{}'::text[]) loop
    execute v_statement;
  end loop;

  perform set_config('keyplane.tenant_id', coalesce(v_scope, ''), true);
  return jsonb_build_object('appended', v_out);
end;
$$;

-- Group commit (src/store/events/appendQueue.ts): the appends a process has queued, of any tenants, in
-- one statement and one commit. Tenants are locked in one order (by id) in every process, so two
-- batches cannot deadlock. Answers {"<index>": <what keyplane_append_events answered>} by input
-- position. Not on Citus, where each append runs on its tenant's node.
create function keyplane_append_batch(p_appends jsonb) returns jsonb
language plpgsql
set search_path from current
as $$
declare
  v_item record;
  v_out jsonb := '{}'::jsonb;
begin
  if exists (select 1 from pg_extension where extname = 'citus') then
    raise exception 'keyplane_append_batch does not run on Citus' using errcode = 'KP001';
  end if;
  for v_item in
    select a.value as a, (a.ordinality - 1)::text as i from jsonb_array_elements(p_appends) with ordinality a
    order by a.value->>'tenant' collate "C", a.ordinality
  loop
    v_out := v_out || jsonb_build_object(v_item.i, keyplane_append_events(
      v_item.a->>'tenant', v_item.a->>'stream_type', v_item.a->>'stream_id', (v_item.a->>'expected_version')::integer,
      v_item.a->>'genesis', (v_item.a->>'occurred_at')::timestamptz, v_item.a->'metadata', v_item.a->'events',
      array(select jsonb_array_elements_text(v_item.a->'projections'))));
  end loop;
  return v_out;
end;
$$;

-- A rebuild's page of projection writes in one round trip (src/app/rebuildProjections.ts), in the
-- caller's transaction and scope.
create function keyplane_execute(p_statements text[]) returns void
language plpgsql
set search_path from current
as $$
declare
  v_statement text;
begin
  foreach v_statement in array p_statements loop
    execute v_statement;
  end loop;
end;
$$;
