-- Alert rules (issue 20): a tenant's rules over its own log, and the evaluator's progress.

-- Read model of alert_rule.* events. A rule watches the events after the one that created it.
create table alert_rules (
  tenant_id        text        not null,
  rule_id          text        not null,
  name             text        not null,
  condition        jsonb       not null,
  cooldown_minutes integer     not null,
  slack            jsonb,
  deleted          boolean     not null default false,
  fired_count      integer     not null default 0,
  last_fired_at    timestamptz,
  created_by       text        not null,
  created_at       timestamptz not null,
  primary key (tenant_id, rule_id)
);

-- Operational, not derived from events: where each tenant's evaluation stands (the rules' memory of
-- recent matches included) and which process evaluates it, under a lease like log stream deliveries.
-- `generation` moves when the tenant's rules change: an evaluator holding the old ones reloads.
create table alert_evaluations (
  tenant_id     text        not null primary key,
  evaluated_seq bigint      not null,
  generation    integer     not null default 0,
  memory        jsonb       not null default '{}',
  lease_owner   text,
  lease_until   timestamptz
);
create index alert_evaluations_lease on alert_evaluations (lease_until);

-- "A GitHub token issued to a principal never seen before": a requester's earliest token, by index.
create index github_tokens_by_requester on github_tokens (tenant_id, requester, issued_at, token_id);

do $$
declare t text;
begin
  foreach t in array array['alert_rules', 'alert_evaluations'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
