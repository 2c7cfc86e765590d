-- The append in one round trip. TypeScript validates the events and computes their content hashes
-- (canonical JSON); this function takes the tenant head lock first, checks the stream version,
-- assigns the dense sequence, extends the chain and inserts, with plans PostgreSQL keeps per session.
-- chain_n = sha256(chain_{n-1} ':' n ':' content_n) as lowercase hex, exactly as hashing.ts computes
-- it, so verifiers re-compute it from an export in TypeScript alone.
create function keyplane_append_events(
  p_tenant text,
  p_stream_type text,
  p_stream_id text,
  p_expected_version integer,
  p_genesis text,
  p_occurred_at timestamptz,
  p_metadata jsonb,
  p_events jsonb -- [{event_id, event_type, schema_version, data, content_hash}, ...]
) returns table (o_seq bigint, o_position bigint, o_recorded_at timestamptz, o_chain_hash text, o_version integer)
language plpgsql as $$
declare
  v_seq bigint;
  v_chain text;
  v_version integer;
  v_event jsonb;
  v_n integer := 0;
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
    -- Nothing written; the caller reports a conflict naming the version it found.
    return query select null::bigint, null::bigint, null::timestamptz, null::text, v_version;
    return;
  end if;

  for v_event in select value from jsonb_array_elements(p_events) loop
    v_n := v_n + 1;
    v_seq := v_seq + 1;
    v_chain := encode(sha256(convert_to(v_chain || ':' || v_seq::text || ':' || (v_event->>'content_hash'), 'UTF8')), 'hex');
    return query
      insert into events (tenant_id, tenant_seq, stream_type, stream_id, stream_version, event_id, event_type, schema_version,
                          data, metadata, occurred_at, content_hash, chain_hash)
      values (p_tenant, v_seq, p_stream_type, p_stream_id, p_expected_version + v_n, (v_event->>'event_id')::uuid,
              v_event->>'event_type', (v_event->>'schema_version')::integer, v_event->'data', p_metadata, p_occurred_at,
              v_event->>'content_hash', v_chain)
      returning events.tenant_seq, events.global_position, events.recorded_at, events.chain_hash, events.stream_version;
  end loop;

  update tenant_heads set last_seq = v_seq, last_chain_hash = v_chain where tenant_id = p_tenant;
end;
$$;
