import type { Decider } from "./decider.ts";
import { agentDecider } from "./agent/decider.ts";
import { alertRuleDecider } from "./alertRule/decider.ts";
import { enrollmentKeyDecider } from "./enrollmentKey/decider.ts";
import { githubTokenDecider } from "./githubToken/decider.ts";
import { identityDecider } from "./identity/decider.ts";
import { installationDecider } from "./installation/decider.ts";
import { logStreamDecider } from "./logStream/decider.ts";
import { accessTokenDecider, sessionDecider } from "./session/decider.ts";
import { taskDecider } from "./task/decider.ts";
import { tenantDecider } from "./tenant/decider.ts";
import { tokenPolicyDecider } from "./tokenPolicy/decider.ts";

/**
 * The decider of each stream type that has one: what folds a stream's events into the state its
 * commands are decided on, so retention can keep that state when it prunes the events (a snapshot).
 * Streams of other types (security, audit_export, installation_request, identity_link_request, identity_token, github_operation) are only appended to.
 */
export const STREAM_DECIDERS: Readonly<Record<string, Decider<any, any, any>>> = {
  tenant: tenantDecider,
  session: sessionDecider,
  access_token: accessTokenDecider,
  installation: installationDecider,
  token_policy: tokenPolicyDecider,
  github_token: githubTokenDecider,
  agent: agentDecider,
  enrollment_key: enrollmentKeyDecider,
  task: taskDecider,
  log_stream: logStreamDecider,
  alert_rule: alertRuleDecider,
  identity: identityDecider,
};
