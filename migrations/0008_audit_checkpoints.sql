-- Signed checkpoints of each tenant's hash chain. Keyplane signs (tenant, sequence, chain hash,
-- previous checkpoint's signature) with its ES256 key, at least hourly per active tenant, so an
-- auditor holding only an export and the published JWKS can tell that the log was not rewritten,
-- and a partial export can start from a checkpoint instead of genesis.
create table audit_checkpoints (
  tenant_id          text        not null,
  tenant_seq         bigint      not null,
  chain_hash         text        not null,
  -- The third part (signature) of the previous checkpoint's JWS; null for a tenant's first checkpoint.
  previous_signature text,
  -- JWS compact serialization (ES256, typ kp-audit-checkpoint+jws) over the fields above and signed_at.
  jws                text        not null,
  kid                text        not null,
  signed_at          timestamptz not null,
  primary key (tenant_id, tenant_seq),
  check (tenant_seq > 0)
);

-- Append-only like the log they vouch for.
create function keyplane_refuse_checkpoint_change() returns trigger language plpgsql as $$
begin
  raise exception 'audit checkpoints are append-only: % refused', tg_op using errcode = 'P0001';
end;
$$;

create trigger audit_checkpoints_append_only_rows before update or delete on audit_checkpoints
  for each row execute function keyplane_refuse_checkpoint_change();
create trigger audit_checkpoints_append_only_truncate before truncate on audit_checkpoints
  for each statement execute function keyplane_refuse_checkpoint_change();

alter table audit_checkpoints enable row level security;
alter table audit_checkpoints force row level security;
create policy tenant_isolation on audit_checkpoints using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id));
