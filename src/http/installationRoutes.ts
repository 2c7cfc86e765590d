import type { IncomingMessage, ServerResponse } from "node:http";
import { authenticate } from "../app/authenticate.ts";
import type { AppDeps } from "../app/deps.ts";
import { completeInstallation } from "../app/installations/completeInstallation.ts";
import { handleGitHubWebhook } from "../app/installations/githubWebhook.ts";
import { startInstallation } from "../app/installations/startInstallation.ts";
import { completeIdentityLink, startIdentityLink } from "../app/identities/linkIdentity.ts";
import { can } from "../auth/actor.ts";
import { assertWellFormedInput, assertWellFormedQuery } from "../domain/wellFormedInput.ts";
import { BadInputError, ForbiddenError, UnauthenticatedError } from "../errors.ts";
import { logContext } from "../logger.ts";
import { sendJson } from "./httpErrors.ts";
import { requestMetaOf } from "./requestMeta.ts";

// The browser-facing side of installations and identity links (redirects to and from the provider)
// and the provider's webhooks. They are plain HTTP, beside /graphql; errors are JSON with the same stable codes
// (src/http/httpErrors.ts, answered by the server's guard).

export function installationRoutes(deps: AppDeps) {
  const metaOf = (req: IncomingMessage) => requestMetaOf(null, req);

  async function install(req: IncomingMessage, res: ServerResponse, platform: string, query: URLSearchParams) {
    const meta = metaOf(req);
    const actor = await authenticate(deps, req.headers.authorization, meta);
    if (!actor) throw new UnauthenticatedError();
    Object.assign(logContext.getStore() ?? {}, { tenantId: actor.tenantId, actor: actor.subject });
    if (!can(actor, "installation:create")) {
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        reason: "missing-permission",
        resource: "installation",
        action: "installation:create",
        request: meta,
      });
      throw new ForbiddenError("starting an installation needs the editor or admin role");
    }
    const started = await startInstallation(deps, actor, platform, meta, query.get("app"));
    res.writeHead(302, { location: started.authorizationUrl, "cache-control": "no-store" });
    res.end();
  }

  async function callback(req: IncomingMessage, res: ServerResponse, platform: string, query: URLSearchParams) {
    const done = await completeInstallation(deps, platform, query, metaOf(req));
    const view = {
      id: done.installation.installation_id,
      platform: done.installation.platform,
      status: done.installation.status,
      externalId: done.installation.external_id,
      account: { id: done.installation.account_id, login: done.installation.account_login, type: done.installation.account_type },
    };
    // A browser (it asks for HTML) goes on to OAUTH_SUCCESS_URL, by default the console's
    // installations page; an API client gets the outcome as JSON.
    const browser = /\btext\/html\b/.test(req.headers.accept ?? "");
    const successUrl = deps.config.installations.successUrl ?? (browser ? `${deps.config.publicUrl}/console/installations` : undefined);
    if (!successUrl) return sendJson(res, 200, { outcome: done.outcome, installation: view });
    const target = new URL(successUrl);
    target.searchParams.set("installation", view.id);
    target.searchParams.set("platform", view.platform);
    target.searchParams.set("outcome", done.outcome);
    res.writeHead(302, { location: target.toString(), "cache-control": "no-store" });
    res.end();
  }

  async function link(req: IncomingMessage, res: ServerResponse, query: URLSearchParams) {
    const meta = metaOf(req);
    const actor = await authenticate(deps, req.headers.authorization, meta);
    if (!actor) throw new UnauthenticatedError();
    Object.assign(logContext.getStore() ?? {}, { tenantId: actor.tenantId, actor: actor.subject });
    if (!can(actor, "identity:link")) {
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        reason: "missing-permission",
        resource: "identity",
        action: "identity:link",
        request: meta,
      });
      throw new ForbiddenError("linking a GitHub identity needs the identity:link permission");
    }
    const started = await startIdentityLink(deps, actor, query.get("app"), meta);
    res.writeHead(302, { location: started.authorizationUrl, "cache-control": "no-store" });
    res.end();
  }

  async function linkCallback(req: IncomingMessage, res: ServerResponse, query: URLSearchParams) {
    const done = await completeIdentityLink(deps, query, metaOf(req));
    const view = { id: done.identity.identity_id, app: done.identity.app, login: done.identity.login, subject: done.identity.subject };
    // A browser (whoever signed in at GitHub for the principal) is told it is done; an API client gets JSON.
    if (!/\btext\/html\b/.test(req.headers.accept ?? "")) return sendJson(res, 200, { outcome: done.outcome, identity: view });
    const text = `GitHub account ${view.login} is linked to ${view.subject}. You can close this window.`;
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "content-security-policy": "default-src 'none'" });
    res.end(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Linked</title><p>${escapeHtml(text)}</p></html>`);
  }

  async function githubWebhook(req: IncomingMessage, res: ServerResponse) {
    const limit = deps.config.installations.webhookMaxBodyBytes;
    const rawBody = await readBody(req, limit);
    if (rawBody === "too-large")
      return sendJson(res, 413, { error: { code: "BAD_USER_INPUT", message: `webhook body over ${limit} bytes` } }, { connection: "close" });
    const header = (name: string) => (req.headers[name] as string | undefined) ?? undefined;
    const outcome = await handleGitHubWebhook(
      deps,
      {
        deliveryId: header("x-github-delivery"),
        event: header("x-github-event"),
        signature: header("x-hub-signature-256"),
        targetAppId: header("x-github-hook-installation-target-id"),
        rawBody,
      },
      metaOf(req),
    );
    sendJson(res, 200, { ok: true, duplicate: outcome.duplicate });
  }

  /** The request's work if it is one of these routes (its errors are the caller's to answer); undefined otherwise. */
  return function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> | undefined {
    const oauth = /^\/oauth\/(install|callback)\/([^/]{1,40})$/.exec(path);
    if (oauth && req.method === "GET") {
      const platform = decodePathSegment(oauth[2]!, "platform");
      // Codes, states and app names reach the provider and the database: %00 and lone surrogates are refused here.
      assertWellFormedQuery(query);
      assertWellFormedInput(platform, "platform");
      return oauth[1] === "install" ? install(req, res, platform, query) : callback(req, res, platform, query);
    }
    const linking = /^\/oauth\/link\/github(\/callback)?$/.exec(path);
    if (linking && req.method === "GET") {
      assertWellFormedQuery(query);
      return linking[1] ? linkCallback(req, res, query) : link(req, res, query);
    }
    if (path === "/webhooks/github" && req.method === "POST") return githubWebhook(req, res);
    return undefined;
  };
}

/** A percent-decoded path segment; malformed encoding (%ZZ, a cut or invalid UTF-8 sequence) is the caller's bad input. */
function decodePathSegment(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new BadInputError(`${field}: malformed percent-encoding`, field);
  }
}

/** The raw body (signatures are over exact bytes), or "too-large" as soon as it passes the limit. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | "too-large"> {
  if (Number(req.headers["content-length"] ?? 0) > limit) {
    req.resume();
    return Promise.resolve("too-large");
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners("data");
        req.resume();
        resolve("too-large");
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
