-- Read tables, written only by the inline projections in the append transaction.

create table tenants (
  tenant_id  text        primary key,
  name       text        not null,
  tier       text        not null check (tier in ('free', 'pro', 'enterprise')),
  status     text        not null check (status in ('active', 'suspended')),
  version    integer     not null,
  created_at timestamptz not null,
  updated_at timestamptz not null
);

-- Access tokens Keyplane minted (service tokens, CLI mints, bootstrap): metadata only, never the token.
create table access_tokens (
  tenant_id  text        not null,
  token_id   text        not null,
  subject    text        not null,
  kind       text        not null,
  roles      jsonb       not null,
  scopes     jsonb       not null,
  issued_at  timestamptz not null,
  expires_at timestamptz not null,
  revoked_at timestamptz,
  primary key (tenant_id, token_id)
);

-- Revoked token ids (access-token jti or refresh family id); checked on every request.
create table revoked_tokens (
  tenant_id  text        not null,
  token_id   text        not null,
  reason     text        not null,
  revoked_at timestamptz not null,
  expires_at timestamptz not null,
  primary key (tenant_id, token_id)
);

-- Refresh-token families: only the id of the refresh token that may be spent next.
create table sessions (
  tenant_id        text        not null,
  family_id        text        not null,
  subject          text        not null,
  kind             text        not null,
  roles            jsonb       not null,
  scopes           jsonb       not null,
  current_token_id text        not null,
  status           text        not null check (status in ('active', 'revoked')),
  version          integer     not null,
  created_at       timestamptz not null,
  updated_at       timestamptz not null,
  expires_at       timestamptz not null,
  primary key (tenant_id, family_id)
);

-- Idempotency-Key records: operational state, not derived from events. The stored response is
-- encrypted with a key derived from the client's idempotency key, so a dump reveals no result.
create table idempotency_keys (
  tenant_id    text        not null,
  key_hash     text        not null,
  request_hash text        not null,
  status       text        not null check (status in ('pending', 'done')),
  response     text,
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null,
  primary key (tenant_id, key_hash)
);
