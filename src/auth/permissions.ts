import type { Role } from "../domain/eventDefinition.ts";

// Permissions as data: every action is `resource:verb`, granted to roles here and nowhere else.
export const PERMISSIONS = {
  "tenant:read": "read the caller's own tenant",
  "tenant:create": "create tenants (platform operators)",
  "tenant:list": "list every tenant (platform operators)",
  "tenant:manage": "change a tenant's tier, suspend and resume it (platform operators)",
  "audit:read": "read and export the tenant's audit log",
  "event:subscribe": "receive all of the tenant's events live as they are appended (tenantEvents; without it, only those of the areas the principal reads)",
  "token:issue": "issue service tokens for the tenant",
  "token:revoke": "revoke any access token of the tenant",
  "installation:read": "list and read installations (never their secrets)",
  "installation:create": "start installing GitHub, Slack or Jira",
  "installation:manage": "suspend, resume and revoke installations",
  "installation:credentials": "obtain an installation's access token (audited on every read)",
  "github-token:issue": "obtain a GitHub App installation token, as far as a token policy allows",
  "github-token:read": "list the GitHub tokens handed out (fingerprints, never tokens)",
  "github-token:revoke": "revoke any GitHub token of the tenant (a requester may always revoke its own)",
  "token-policy:read": "read the tenant's GitHub token policies",
  "token-policy:manage": "define and delete GitHub token policies",
  "agent:read": "list and read agents, enrollment keys and tasks",
  "agent:write": "create and update agents, dispatch tasks",
  "agent:manage": "publish and delete agents, create and revoke enrollment keys",
  "agent:act": "act as the one agent the token was enrolled as (heartbeat, its own tasks)",
  "log-stream:manage": "list, create, change, replay and delete the tenant's log streams (never their secrets)",
  "alert-rule:manage": "list, create and delete the tenant's alert rules, and receive their firings live",
  "identity:link": "link, list and unlink the caller's own GitHub identity (the GitHub App's user authorization)",
  "identity:manage": "list every linked identity of the tenant and unlink any (offboarding)",
  "identity:token": "obtain the user token of the caller's own linked identity (audited on every read)",
  "github:operate": "fork repositories and open pull requests on GitHub as the caller's linked identity, or with an installation token a token policy allows",
  "retention:manage":
    "set how long the tenant's audit log is kept (within its tier) and place or release a legal hold on it (admins of their tenant; platform operators of any)",
} as const;

export type Permission = keyof typeof PERMISSIONS;

const VIEWER: Permission[] = ["tenant:read", "installation:read", "token-policy:read", "agent:read", "identity:link"];
const EDITOR: Permission[] = [...VIEWER, "installation:create", "agent:write"];
const ADMIN: Permission[] = [
  ...EDITOR,
  "audit:read",
  "token:issue",
  "token:revoke",
  "installation:manage",
  "github-token:issue",
  "github-token:read",
  "github-token:revoke",
  "token-policy:manage",
  "agent:manage",
  "event:subscribe",
  "log-stream:manage",
  "alert-rule:manage",
  "retention:manage",
  "identity:manage",
];

export const ROLE_PERMISSIONS: Record<Role, readonly Permission[]> = {
  viewer: VIEWER,
  editor: EDITOR,
  admin: ADMIN,
  // Services use credentials; people manage installations but never see their tokens.
  service: [
    "tenant:read",
    "installation:read",
    "installation:credentials",
    "github-token:issue",
    "agent:act",
    "event:subscribe",
    "identity:link",
    "identity:token",
    "github:operate",
  ],
  platform: ["tenant:create", "tenant:list", "tenant:manage", "retention:manage"],
};

/**
 * Held by services only, never by people; whoever may issue service tokens may hand them on
 * (an admin provisions a service that reads credentials without ever seeing a token itself).
 */
export const SERVICE_ONLY_PERMISSIONS: ReadonlySet<Permission> = new Set(["installation:credentials", "agent:act", "identity:token", "github:operate"]);

/** Scopes that stand for several permissions: an enrolled agent's token is `service` narrowed by `agent`. */
const SCOPE_ALIASES: Readonly<Record<string, readonly Permission[]>> = {
  agent: ["agent:act", "github-token:issue", "identity:link", "identity:token", "github:operate"],
};

/** Scopes that grant their permission on their own: an auditor's token is `viewer` + `audit:read`. */
const GRANTING_SCOPES: ReadonlySet<Permission> = new Set(["audit:read"]);

/**
 * What a token may do: the union of its roles' permissions; when the token carries scopes, only the
 * permissions among them (scopes narrow), plus the scopes that grant on their own.
 */
export function effectivePermissions(roles: readonly Role[], scopes: readonly string[]): Set<Permission> {
  const fromRoles = new Set<Permission>(roles.flatMap((r) => ROLE_PERMISSIONS[r] ?? []));
  if (scopes.length === 0) return fromRoles;
  const narrowed = new Set<Permission>();
  for (const scope of scopes.flatMap((s): readonly string[] => SCOPE_ALIASES[s] ?? [s])) {
    if (fromRoles.has(scope as Permission) || GRANTING_SCOPES.has(scope as Permission)) narrowed.add(scope as Permission);
  }
  return narrowed;
}
