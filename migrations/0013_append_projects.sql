-- The append in one statement that commits on its own (issue 17): the function now sets the tenant
-- scope itself, takes any number of appends of its tenant, and runs the projection writes TypeScript
-- compiled for the appended events (src/store/projections/*.ts, values as literals) after inserting
-- them, so that a lone append is one round trip and the tenant head lock is held only while this
-- statement runs. Several appends of several tenants share one statement and one commit (group commit). Writes to the lookup
-- tables (unique across tenants: on Citus a copy on every node, which a call delegated to the tenant's
-- node cannot write) stay with the caller, in the same transaction.
-- It no longer notifies: PostgreSQL commits notifying transactions one at a time, a global lock held
-- across the WAL flush, so every append would wait for the one before. The appending process sends
-- the hint after the commit (src/store/events/announceAppends.ts).
drop function keyplane_append_events(text, text, text, integer, text, timestamptz, jsonb, jsonb);

-- Appends of one tenant, in order: [{stream_type, stream_id, expected_version, occurred_at, metadata,
-- events: [{event_id, event_type, schema_version, data, content_hash}, ...], projections: [as
-- keyplane_execute takes them]}, ...].
-- Answers one result per append, in order: {"version": found} when its expected version is not the
-- stream's (nothing of it written; the others go on), else {"appended": [{seq, recorded_at,
-- chain_hash, version}, ...]}. chain_n = sha256(chain_{n-1} ':' n ':' content_n) as lowercase hex,
-- exactly as hashing.ts computes it. p_tenant is its distribution argument on Citus (citus.ts):
-- called alone in its SELECT, it runs on the node holding the tenant.
create function keyplane_append_tenant(p_tenant text, p_genesis text, p_appends jsonb) returns jsonb
language plpgsql
-- Its tables are found in the schema it was created in, also on a Citus worker, whose session knows
-- nothing of the search_path the caller set.
set search_path from current
as $$
declare
  v_scope text := current_setting('keyplane.tenant_id', true);
  v_seq bigint;
  v_chain text;
  v_versions jsonb;
  v_append jsonb;
  v_event jsonb;
  v_key text;
  v_found integer;
  v_expected integer;
  v_n integer;
  v_appended jsonb;
  v_results jsonb := '[]'::jsonb;
  v_rows jsonb := '[]'::jsonb;
begin
  -- Called on its own (no scope: the statement is the whole transaction), row-level security sees
  -- this tenant for the call. Inside a transaction scoped to a tenant, that scope stays: appending
  -- another tenant's log from there is refused, as any write to another tenant's rows.
  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', p_tenant, true);
  end if;

  select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  if not found then
    insert into tenant_heads (tenant_id, last_seq, last_chain_hash) values (p_tenant, 0, p_genesis) on conflict (tenant_id) do nothing;
    select h.last_seq, h.last_chain_hash into v_seq, v_chain from tenant_heads h where h.tenant_id = p_tenant for update;
  end if;

  -- After the lock, so its snapshot sees every append of this tenant that committed before: the
  -- version of each stream named, in one statement.
  -- (Each stream looked up by its index: a join could scan the tenant's whole log.)
  select coalesce(jsonb_object_agg(s.stream_type || chr(31) || s.stream_id, v.version), '{}'::jsonb) into v_versions
    from (select distinct a->>'stream_type' as stream_type, a->>'stream_id' as stream_id from jsonb_array_elements(p_appends) a) s
    cross join lateral (select max(e.stream_version) as version from events e
                         where e.tenant_id = p_tenant and e.stream_type = s.stream_type and e.stream_id = s.stream_id) v
   where v.version is not null;

  for v_append in select value from jsonb_array_elements(p_appends) loop
    v_key := (v_append->>'stream_type') || chr(31) || (v_append->>'stream_id');
    v_found := coalesce((v_versions->>v_key)::integer, 0);
    v_expected := (v_append->>'expected_version')::integer;
    if v_found <> v_expected then
      v_results := v_results || jsonb_build_array(jsonb_build_object('version', v_found));
      continue;
    end if;
    v_n := 0;
    v_appended := '[]'::jsonb;
    for v_event in select value from jsonb_array_elements(v_append->'events') loop
      v_n := v_n + 1;
      v_seq := v_seq + 1;
      v_chain := encode(sha256(convert_to(v_chain || ':' || v_seq::text || ':' || (v_event->>'content_hash'), 'UTF8')), 'hex');
      v_rows := v_rows || jsonb_build_object('seq', v_seq, 'stream_type', v_append->'stream_type', 'stream_id', v_append->'stream_id',
        'version', v_expected + v_n, 'event', v_event, 'metadata', v_append->'metadata', 'occurred_at', v_append->'occurred_at', 'chain_hash', v_chain);
      v_appended := v_appended || jsonb_build_object('seq', v_seq, 'recorded_at', now(), 'chain_hash', v_chain, 'version', v_expected + v_n);
    end loop;
    v_versions := jsonb_set(v_versions, array[v_key], to_jsonb(v_expected + v_n));
    v_results := v_results || jsonb_build_array(jsonb_build_object('appended', v_appended));
  end loop;

  if jsonb_array_length(v_rows) > 0 then
    insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version,
                        data, metadata, occurred_at, content_hash, chain_hash)
    select p_tenant, (r->>'seq')::bigint, r->>'stream_type', r->>'stream_id', (r->>'version')::integer, (r->'event'->>'event_id')::uuid,
           r->'event'->>'event_type', (r->'event'->>'schema_version')::integer, r->'event'->'data', r->'metadata',
           (r->>'occurred_at')::timestamptz, r->'event'->>'content_hash', r->>'chain_hash'
      from jsonb_array_elements(v_rows) r;
    update tenant_heads set last_seq = v_seq, last_chain_hash = v_chain where tenant_id = p_tenant;

    -- The projection writes of the appends written, in order.
    perform keyplane_execute(coalesce((
      select jsonb_agg(p.value order by a.ordinality, p.ordinality)
        from jsonb_array_elements(p_appends) with ordinality a
        cross join lateral jsonb_array_elements(a.value->'projections') with ordinality p
       where (v_results->((a.ordinality - 1)::integer)) ? 'appended'), '[]'::jsonb));
  end if;

  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', '', true);
  end if;
  return v_results;
end;
$$;

-- Group commit (src/store/events/appendQueue.ts): the appends a process has queued, of any tenants, in
-- one statement and one commit: [{tenant, genesis, appends: [as keyplane_append_tenant takes them]}, ...].
-- Tenants are locked in one order (by id, bytewise) in every process, so two batches cannot deadlock.
-- Answers the results of each tenant's appends, in the order given. Not on Citus, where each tenant's
-- appends run on its own node.
create function keyplane_append_batch(p_tenants jsonb) returns jsonb
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
    select t.value as t, (t.ordinality - 1)::text as i from jsonb_array_elements(p_tenants) with ordinality t
    order by t.value->>'tenant' collate "C"
  loop
    v_out := v_out || jsonb_build_object(v_item.i, keyplane_append_tenant(v_item.t->>'tenant', v_item.t->>'genesis', v_item.t->'appends'));
  end loop;
  return v_out;
end;
$$;

-- The live feed's read of other processes' appends (src/app/events/eventFeed.ts): a tenant's events
-- after a sequence, at most p_limit, as rows in jsonb, in one statement without a transaction of its
-- own, scoped to the tenant as the append is (on Citus, run on the tenant's node).
create function keyplane_events_after(p_tenant text, p_after bigint, p_limit integer) returns jsonb
language plpgsql
set search_path from current
as $$
declare
  v_scope text := current_setting('keyplane.tenant_id', true);
  v_out jsonb;
begin
  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', p_tenant, true);
  end if;
  select coalesce(jsonb_agg(to_jsonb(e) order by e.tenant_seq), '[]'::jsonb) into v_out
    from (select * from events where tenant_id = p_tenant and tenant_seq > p_after order by tenant_seq limit p_limit) e;
  if coalesce(v_scope, '') = '' then
    perform set_config('keyplane.tenant_id', '', true);
  end if;
  return v_out;
end;
$$;

-- Projection writes, in order (the append's, a rebuild's page), each {q, a, h?}: q the statement with
-- $1.. placeholders, a its values as an argument list of literals ("(v1, v2, ...)"), h for a
-- single-row INSERT its text before the VALUES list. A statement runs as a prepared statement of the
-- session, named by its text (planned once, then a generic plan: several times cheaper than planning
-- each, as EXECUTE of its text would); consecutive single-row INSERTs with the same h run as one
-- multi-row INSERT instead. In the caller's transaction and scope.
create function keyplane_execute(p_statements jsonb) returns void
language plpgsql
set search_path from current
as $$
declare
  v_statement jsonb;
  v_run jsonb; -- a single-row INSERT waiting for the next statement: merged with it if it is alike
  v_values text[];
  v_todo jsonb[];
  v_one jsonb;
  v_name text;
  v_prepared text[] := '{}';
begin
  -- The empty object at the end sends the last run.
  for v_statement in select value from jsonb_array_elements(p_statements || '[{}]'::jsonb) loop
    if v_run is not null and v_statement->>'h' is not distinct from v_run->>'h' then
      v_values := v_values || (v_statement->>'a');
      continue;
    end if;
    v_todo := '{}';
    if v_run is not null then
      if cardinality(v_values) > 1 then
        execute (v_run->>'h') || array_to_string(v_values, ', ');
      else
        v_todo := array[v_run];
      end if;
      v_run := null;
    end if;
    if v_statement ? 'h' then
      v_run := v_statement;
      v_values := array[v_statement->>'a'];
    elsif v_statement ? 'q' then
      v_todo := v_todo || v_statement;
    end if;
    foreach v_one in array v_todo loop
      -- Named by its text and the schema its tables resolve in; looked up once per call.
      v_name := 'keyplane_' || md5(current_schema() || ' ' || (v_one->>'q'));
      if not v_name = any(v_prepared) then
        if not exists (select 1 from pg_prepared_statements s where s.name = v_name) then
          execute format('prepare %I as %s', v_name, v_one->>'q');
        end if;
        v_prepared := v_prepared || v_name;
      end if;
      execute 'execute ' || quote_ident(v_name) || (v_one->>'a');
    end loop;
  end loop;
end;
$$;
