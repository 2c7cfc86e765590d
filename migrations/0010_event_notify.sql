-- After every append, a hint for the processes that serve live subscribers: the tenant and its new
-- last sequence, never the event itself (subscribers read the rows by sequence, under row-level
-- security). NOTIFY is transactional: the hint goes out when the append commits, and not at all when
-- it rolls back. The append updates its tenant's head exactly once, so one hint per append.
create function keyplane_notify_append() returns trigger
language plpgsql as $$
begin
  perform pg_notify('keyplane_events', new.tenant_id || ' ' || new.last_seq::text);
  return null;
end;
$$;

create trigger tenant_heads_notify_append
  after update of last_seq on tenant_heads
  for each row execute function keyplane_notify_append();
