-- Agents: the registry, one-time enrollment keys, presence and tasks.

-- Read model of agent.* events.
create table agents (
  tenant_id      text        not null,
  agent_id       text        not null,
  name           text        not null,
  type           text        not null,
  version        integer     not null,
  config         jsonb       not null,
  tags           jsonb       not null,
  status         text        not null check (status in ('draft', 'published', 'deleted')),
  connection     text        not null check (connection in ('pending', 'online', 'offline')),
  ephemeral      boolean     not null default false,
  host           jsonb,
  enrolled_at    timestamptz,
  offline_since  timestamptz,
  created_by     text        not null,
  created_at     timestamptz not null,
  updated_at     timestamptz not null,
  primary key (tenant_id, agent_id)
);
create index agents_by_created on agents (tenant_id, created_at desc, agent_id desc) where status <> 'deleted';

-- Operational, not derived from events: the last heartbeat of each agent (a beat is not an event;
-- only going online or offline is).
create table agent_presence (
  tenant_id    text        not null,
  agent_id     text        not null,
  last_seen_at timestamptz not null,
  status       text,
  facts        jsonb,
  primary key (tenant_id, agent_id)
);
create index agent_presence_seen on agent_presence (last_seen_at);

-- Read model of enrollment_key.* events. Only the prefix and a SHA-256 of the whole key are kept.
create table enrollment_keys (
  tenant_id    text        not null,
  key_id       text        not null,
  prefix       text        not null unique,
  key_hash     text        not null,
  description  text        not null,
  reusable     boolean     not null,
  ephemeral    boolean     not null,
  max_uses     integer,
  uses         integer     not null default 0,
  tags         jsonb       not null,
  agent_id     text,
  expires_at   timestamptz not null,
  revoked_at   timestamptz,
  last_used_at timestamptz,
  created_by   text        not null,
  created_at   timestamptz not null,
  primary key (tenant_id, key_id)
);

-- Read model of task.* events.
create table tasks (
  tenant_id       text        not null,
  task_id         text        not null,
  agent_id        text        not null,
  kind            text        not null,
  payload         jsonb       not null,
  status          text        not null check (status in ('pending', 'claimed', 'completed', 'failed', 'timed_out')),
  timeout_seconds integer     not null,
  deadline_at     timestamptz not null,
  progress        jsonb,
  progress_message text,
  result          jsonb,
  error           text,
  dispatched_by   text        not null,
  dispatched_at   timestamptz not null,
  claimed_at      timestamptz,
  finished_at     timestamptz,
  version         integer     not null,
  primary key (tenant_id, task_id)
);
create index tasks_by_agent on tasks (tenant_id, agent_id, status, dispatched_at);
create index tasks_by_dispatch on tasks (tenant_id, dispatched_at desc, task_id desc);
create index tasks_open_deadline on tasks (deadline_at) where status in ('pending', 'claimed');

do $$
declare t text;
begin
  foreach t in array array['agents', 'agent_presence', 'enrollment_keys', 'tasks'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format('create policy tenant_isolation on %I using (keyplane_tenant_visible(tenant_id)) with check (keyplane_tenant_visible(tenant_id))', t);
  end loop;
end;
$$;
