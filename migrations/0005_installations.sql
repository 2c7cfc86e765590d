-- Installations of GitHub Apps, Slack apps and Jira (Atlassian 3LO) apps, per tenant.

-- Read model, written only by the installations projection.
create table installations (
  tenant_id             text        not null,
  installation_id       text        not null,
  platform              text        not null check (platform in ('github', 'slack', 'jira')),
  external_id           text        not null,
  suspended_by_tenant   boolean     not null default false,
  suspended_by_provider boolean     not null default false,
  needs_reauth          boolean     not null default false,
  revoked_at            timestamptz,
  -- One status, derived from the facts that make it (each side lifts only its own suspension).
  status                text        generated always as (
    case when revoked_at is not null then 'revoked'
         when suspended_by_tenant or suspended_by_provider then 'suspended'
         when needs_reauth then 'needs_reauth'
         else 'active' end) stored,
  account_id            text        not null,
  account_login         text        not null,
  account_type          text        not null,
  account_url           text,
  permissions           jsonb       not null,
  scopes                jsonb       not null,
  repository_selection  text,
  repositories          jsonb,
  details               jsonb,
  credential_fingerprint text,
  credentials_expires_at timestamptz,
  last_refreshed_at     timestamptz,
  refresh_failures      integer     not null default 0,
  last_refresh_error    text,
  next_refresh_at       timestamptz,
  last_credentials_read_at timestamptz,
  version               integer     not null,
  created_by            text        not null,
  created_at            timestamptz not null,
  updated_at            timestamptz not null,
  primary key (tenant_id, installation_id)
);
create index installations_by_platform on installations (tenant_id, platform, status, created_at);
-- A GitHub App installation belongs to one tenant at a time (webhooks find their tenant through it).
create unique index installations_github_owner on installations (external_id) where platform = 'github' and status <> 'revoked';
create index installations_by_external_id on installations (platform, external_id);
-- What the refresh scheduler scans.
create index installations_refresh_due on installations (credentials_expires_at) where status = 'active' and credentials_expires_at is not null;

-- The credential vault: AES-256-GCM envelopes (key id inside each), written by the installation use
-- cases in the same transaction as the event that names the credential's fingerprint. Not derived
-- from events (the log never holds a secret), so a projection rebuild leaves it alone.
create table installation_secrets (
  tenant_id         text        not null,
  installation_id   text        not null,
  key_id            text        not null,
  access_token      text        not null,
  refresh_token     text,
  expires_at        timestamptz,
  updated_at        timestamptz not null,
  primary key (tenant_id, installation_id)
);
create index installation_secrets_by_key on installation_secrets (key_id);

-- Pending OAuth authorizations: only the state's SHA-256 is kept; the PKCE verifier is encrypted.
-- The callback marks a row consumed (so a state works once, and a replay is told apart from a
-- forgery); the refresh sweep deletes rows past their expiry.
create table oauth_states (
  tenant_id      text        not null,
  request_id     text        not null,
  state_hash     text        not null unique,
  platform       text        not null,
  actor          jsonb       not null,
  key_id         text,
  code_verifier  text,
  created_at     timestamptz not null,
  expires_at     timestamptz not null,
  consumed_at    timestamptz,
  primary key (tenant_id, request_id)
);
create index oauth_states_expiry on oauth_states (expires_at);

-- Platform-wide: webhook deliveries already handled (a redelivery appends nothing twice).
create table webhook_deliveries (
  provider     text        not null,
  delivery_id  text        not null,
  event        text        not null,
  action       text,
  tenant_id    text,
  received_at  timestamptz not null,
  primary key (provider, delivery_id)
);
create index webhook_deliveries_age on webhook_deliveries (received_at);

-- Platform-wide: GitHub installations announced by webhook before any tenant's install callback
-- claimed them. The claiming callback takes the row over.
create table github_unclaimed_installations (
  external_id          text        primary key,
  account              jsonb       not null,
  permissions          jsonb       not null,
  repository_selection text,
  repositories         jsonb       not null,
  suspended            boolean     not null default false,
  received_at          timestamptz not null,
  updated_at           timestamptz not null
);

do $$
declare t text;
begin
  foreach t in array array['installations', 'installation_secrets', 'oauth_states'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
  foreach t in array array['webhook_deliveries', 'github_unclaimed_installations'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy platform_only on %I using (current_setting(''keyplane.platform'', true) = ''on'') with check (current_setting(''keyplane.platform'', true) = ''on'')', t);
  end loop;
end;
$$;

-- Projection rebuilds replay in global order: a GitHub installation revoked by one tenant and then
-- claimed by another must replay in that order for the one-owner index to hold.
create index events_by_global_position on events (global_position);
