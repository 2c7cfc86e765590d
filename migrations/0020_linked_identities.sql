-- Linked identities (issue 22): a principal's own GitHub account, linked through the GitHub App's
-- user authorization flow.

-- Read model of identity.* events: one row per principal and app while linked (unlink deletes it).
create table linked_identities (
  tenant_id            text        not null,
  identity_id          text        not null,
  subject              text        not null,
  subject_kind         text        not null,
  provider             text        not null check (provider in ('github')),
  app                  text        not null,
  account_id           text        not null,
  login                text        not null,
  status               text        not null check (status in ('linked', 'needs_relink')),
  access_expires_at    timestamptz,
  refresh_expires_at   timestamptz,
  refresh_failures     integer     not null default 0,
  last_refresh_error   text,
  next_refresh_at      timestamptz,
  expiring_notice_at   timestamptz,
  linked_at            timestamptz not null,
  refreshed_at         timestamptz,
  version              integer     not null,
  updated_at           timestamptz not null,
  primary key (tenant_id, identity_id)
);
-- One identity per principal and app.
create unique index linked_identities_principal on linked_identities (tenant_id, subject, provider, app);
-- What the expiry sweep scans.
create index linked_identities_refresh_expiry on linked_identities (refresh_expires_at) where status = 'linked';

-- The user tokens, encrypted with the keyring (AAD: tenant, identity and field), written by the use
-- cases beside the event that names their fingerprints. Not derived from events.
create table identity_secrets (
  tenant_id           text        not null,
  identity_id         text        not null,
  key_id              text        not null,
  access_token        text        not null,
  refresh_token       text,
  access_expires_at   timestamptz,
  refresh_expires_at  timestamptz,
  updated_at          timestamptz not null,
  primary key (tenant_id, identity_id)
);
create index identity_secrets_by_key on identity_secrets (key_id);

-- An OAuth state is for installing or for linking an identity: a link's state is refused by the
-- install callback and the other way round.
alter table oauth_states add column purpose text not null default 'install' check (purpose in ('install', 'link'));

do $$
declare t text;
begin
  foreach t in array array['linked_identities', 'identity_secrets'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
