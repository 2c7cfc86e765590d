-- GitHub installation tokens for services and agents: which named app an installation belongs to,
-- the tenants' token policies, and every token handed out.

-- The GitHub App an installation is of (named apps: rex, clippy, …); null for Slack and Jira.
alter table installations add column app text;
alter table oauth_states add column app text;
create index installations_by_account on installations (tenant_id, platform, app, lower(account_login)) where status <> 'revoked';

-- Read model of token_policy.* events.
create table token_policies (
  tenant_id    text        not null,
  name         text        not null,
  app          text        not null,
  roles        jsonb       not null,
  subjects     jsonb       not null,
  agent_tags   jsonb       not null,
  repositories jsonb       not null,
  permissions  jsonb       not null,
  version      integer     not null,
  updated_by   text        not null,
  updated_at   timestamptz not null,
  primary key (tenant_id, name)
);

-- Read model of token.* events: what was handed out to whom, by fingerprint.
create table github_tokens (
  tenant_id              text        not null,
  token_id               text        not null,
  app                    text        not null,
  installation_id        text        not null,
  github_installation_id bigint      not null,
  requester              text        not null,
  policy                 text        not null,
  repositories           jsonb,
  permissions            jsonb       not null,
  fingerprint            text        not null,
  cached                 boolean     not null,
  issued_at              timestamptz not null,
  expires_at             timestamptz not null,
  revoked_at             timestamptz,
  revoke_reason          text,
  primary key (tenant_id, token_id)
);
create index github_tokens_by_issue on github_tokens (tenant_id, issued_at desc, token_id desc);
create index github_tokens_by_fingerprint on github_tokens (tenant_id, fingerprint);
create index github_tokens_outstanding on github_tokens (tenant_id, installation_id, expires_at) where revoked_at is null;

-- The token itself, encrypted like installation credentials, kept only so it can be revoked at
-- GitHub (DELETE /installation/token authenticates with the token). Deleted on revocation; rows
-- past expiry are pruned.
create table github_token_secrets (
  tenant_id   text        not null,
  fingerprint text        not null,
  key_id      text        not null,
  token       text        not null,
  expires_at  timestamptz not null,
  primary key (tenant_id, fingerprint)
);
create index github_token_secrets_expiry on github_token_secrets (expires_at);

do $$
declare t text;
begin
  foreach t in array array['token_policies', 'github_tokens', 'github_token_secrets'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
