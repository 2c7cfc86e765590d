import { z } from "zod";
import { agentTags } from "../agent/tags.ts";
import { accessLevelSchema, permissionMapSchema } from "./events.ts";

// Least privilege for GitHub tokens, as data: who may ask for which app, which repositories
// (exact owner/name, owner/prefix-* or owner/*) and at most which permissions. Pure functions.

const LEVEL = { read: 1, write: 2, admin: 3 } as const;
type Level = keyof typeof LEVEL;

const repositoryPattern = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_.-]{1,39}\/(\*|[A-Za-z0-9_.-]{1,100}\*?)$/, "repositories look like owner/name, owner/prefix-* or owner/*")
  .transform((p) => p.toLowerCase());

export const TokenPolicyInput = z
  .object({
    name: z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a slug of a-z, 0-9 and '-'"),
    app: z
      .string()
      .trim()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, "a GitHub App name as configured (e.g. rex)"),
    roles: z
      .array(z.enum(["viewer", "editor", "admin", "service"]))
      .max(4)
      .default([]),
    subjects: z.array(z.string().trim().min(1).max(200)).max(100).default([]),
    agentTags: agentTags.default([]),
    repositories: z.array(repositoryPattern).min(1, "at least one repository pattern").max(200),
    permissions: permissionMapSchema.refine((p) => Object.keys(p).length > 0, "at least one permission"),
  })
  .refine((p) => p.roles.length + p.subjects.length + p.agentTags.length > 0, { message: "name at least one role, subject or agent tag", path: ["roles"] });

export type TokenPolicy = z.output<typeof TokenPolicyInput>;

export interface Requester {
  subject: string;
  roles: readonly string[];
  tags?: readonly string[];
}

export interface TokenRequest {
  app: string;
  owner: string;
  /** Repository names under owner, lower-cased; empty = none named. */
  repositories: string[];
  permissions: Record<string, string>;
}

export type PolicyDecision =
  | { allowed: true; policy: string; repositories: string[] | "all"; permissions: Record<string, Level> }
  | { allowed: false; reason: string };

const matchesPrincipal = (p: TokenPolicy, who: Requester) =>
  p.roles.some((r) => who.roles.includes(r)) || p.subjects.includes(who.subject) || p.agentTags.some((t) => who.tags?.includes(t));

function matchesRepository(pattern: string, owner: string, name: string): boolean {
  const [patternOwner, patternName] = pattern.split("/") as [string, string];
  if (patternOwner !== owner) return false;
  if (patternName === "*") return true;
  return patternName.endsWith("*") ? name.startsWith(patternName.slice(0, -1)) : name === patternName;
}

/**
 * The first policy (by name) that allows the whole request. A request that names no repositories
 * gets the policy's exact repositories for that owner (or every repository only when the policy says
 * owner/*); one that names no permissions gets the policy's permissions. Never "the whole
 * installation" unless a policy grants exactly that.
 */
export function decideTokenRequest(policies: readonly TokenPolicy[], who: Requester, request: TokenRequest): PolicyDecision {
  const owner = request.owner.toLowerCase();
  const asked = request.repositories.map((r) => r.toLowerCase());
  const candidates = [...policies].sort((a, b) => a.name.localeCompare(b.name)).filter((p) => p.app === request.app && matchesPrincipal(p, who));
  if (!candidates.length) return { allowed: false, reason: "no-policy-for-principal" };
  let reason = "outside-every-policy";
  for (const policy of candidates) {
    const ownPatterns = policy.repositories.filter((p) => p.startsWith(`${owner}/`));
    if (!ownPatterns.length) {
      reason = "owner-not-allowed";
      continue;
    }
    if (asked.some((name) => !ownPatterns.some((p) => matchesRepository(p, owner, name)))) {
      reason = "repository-not-allowed";
      continue;
    }
    const beyond = Object.entries(request.permissions).filter(([perm, level]) => {
      const max = policy.permissions[perm] as Level | undefined;
      return !max || !(level in LEVEL) || LEVEL[level as Level] > LEVEL[max];
    });
    if (beyond.length) {
      reason = "permission-not-allowed";
      continue;
    }
    let repositories: string[] | "all";
    if (asked.length) repositories = request.repositories;
    else if (ownPatterns.includes(`${owner}/*`)) repositories = "all";
    else {
      repositories = ownPatterns.filter((p) => !p.endsWith("*")).map((p) => p.split("/")[1]!);
      if (!repositories.length) {
        reason = "repositories-required";
        continue;
      }
    }
    const permissions = Object.keys(request.permissions).length ? (request.permissions as Record<string, Level>) : { ...policy.permissions };
    return { allowed: true, policy: policy.name, repositories, permissions };
  }
  return { allowed: false, reason };
}

export { accessLevelSchema };
