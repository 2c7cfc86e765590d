import { lexicographicSortSchema, printSchema, type GraphQLSchema } from "graphql";
import { builder } from "./builder.ts";
import "./types/me.ts";
import "./types/tenant.ts";
import "./types/auditLog.ts";
import "./types/sessions.ts";
import "./types/installation.ts";
import "./types/githubTokens.ts";
import "./types/agents.ts";
import "./types/tasks.ts";
import "./types/ping.ts";
import "./types/tenantEvents.ts";
import "./types/logStreams.ts";
import "./types/alerts.ts";
import "./types/retention.ts";
import "./types/identities.ts";
import "./types/githubOperations.ts";

export const schema: GraphQLSchema = builder.toSchema();

/** The SDL checked in at schema/schema.graphql. */
export const printedSchema = (): string => printSchema(lexicographicSortSchema(schema)) + "\n";
