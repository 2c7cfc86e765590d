-- Second wall behind the tenant filter in every query: rows are visible only to a transaction whose
-- keyplane.tenant_id setting names their tenant, or that declared itself platform-wide
-- (migrations, projection rebuilds, platform operators). FORCE applies it to the table owner too;
-- superusers bypass RLS, so production connects as a non-superuser owner (see ops/README.md).
create function keyplane_tenant_visible(row_tenant text) returns boolean language sql stable as $$
  select row_tenant = current_setting('keyplane.tenant_id', true)
      or current_setting('keyplane.platform', true) = 'on'
$$;

do $$
declare t text;
begin
  foreach t in array array['tenant_heads', 'events', 'tenants', 'access_tokens', 'revoked_tokens', 'sessions', 'idempotency_keys'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
