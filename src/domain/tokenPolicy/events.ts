import { z } from "zod";
import { defineEvent, type EventOf } from "../eventDefinition.ts";
import { permissionMapSchema } from "../githubToken/events.ts";

// A tenant's named policies: who may ask for GitHub tokens of which app, repositories and permissions.

export const TokenPolicySet = defineEvent(
  "token_policy.set",
  1,
  z.object({
    name: z.string(),
    app: z.string(),
    roles: z.array(z.string()),
    subjects: z.array(z.string()),
    agentTags: z.array(z.string()),
    repositories: z.array(z.string()),
    permissions: permissionMapSchema,
  }),
);
export const TokenPolicyDeleted = defineEvent("token_policy.deleted", 1, z.object({ name: z.string() }));

export const tokenPolicyEvents = [TokenPolicySet, TokenPolicyDeleted] as const;
export type TokenPolicyEvent = EventOf<(typeof tokenPolicyEvents)[number]>;
