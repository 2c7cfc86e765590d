import { z } from "zod";

/** An agent's tag: agents carry them, enrollment keys give them, token policies match on them. */
export const agentTag = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9:._-]{0,62}$/, "tags are lower-case slugs");

/** An agent's tags, a key's or a policy's: at most 50. */
export const agentTags = z.array(agentTag).max(50);
