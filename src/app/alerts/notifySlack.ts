import type { SlackTarget } from "../../domain/alertRule/events.ts";
import type { Firing } from "../../domain/alertRule/conditions.ts";
import type { AppDeps } from "../deps.ts";
import { currentCredentials } from "../installations/refreshCredentials.ts";

type Deps = Pick<AppDeps, "db" | "config" | "keyring" | "providers" | "githubApps" | "logger" | "now">;

/**
 * Posts a firing to the rule's Slack channel through the tenant's own Slack installation (its bot
 * token, refreshed first when near expiry). Answers the failure in Slack's words, never with a token.
 */
export async function notifySlack(
  deps: Deps,
  tenantId: string,
  target: SlackTarget,
  rule: { name: string },
  firing: Firing,
): Promise<{ ok: true } | { ok: false; error: string }> {
  const slack = deps.config.providers.slack;
  if (!slack) return { ok: false, error: "Slack is not configured on this Keyplane" };
  let token: string;
  try {
    token = (await currentCredentials(deps, tenantId, target.installationId)).credentials.accessToken;
  } catch (error) {
    return { ok: false, error: `no usable credentials: ${(error as Error).message}` };
  }
  const icon = firing.level === "critical" ? ":rotating_light:" : ":warning:";
  const text = [
    `${icon} *${rule.name}*: ${firing.summary}`,
    `${firing.count} event(s), sequences ${firing.firstSequence}–${firing.lastSequence}${firing.suppressed ? `; ${firing.suppressed} more since the previous alert` : ""}`,
    `tenant \`${tenantId}\``,
  ].join("\n");
  try {
    const res = await fetch(`${slack.apiUrl}/chat.postMessage`, {
      method: "POST",
      headers: { "content-type": "application/json; charset=utf-8", authorization: `Bearer ${token}` },
      body: JSON.stringify({ channel: target.channel, text, unfurl_links: false }),
      signal: AbortSignal.timeout(deps.config.providers.timeoutMs),
    });
    const body = (await res.json().catch(() => ({}))) as { ok?: boolean; error?: string };
    if (res.ok && body.ok) return { ok: true };
    return { ok: false, error: body.error ?? `HTTP ${res.status}` };
  } catch (error) {
    return { ok: false, error: (error as Error).name === "TimeoutError" ? "Slack did not answer in time" : "Slack could not be reached" };
  }
}
