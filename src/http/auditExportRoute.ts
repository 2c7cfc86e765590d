import type { IncomingMessage, ServerResponse } from "node:http";
import { parseExportRequest, type RawExportRequest } from "../app/audit/parseExportRequest.ts";
import { startAuditExport } from "../app/audit/startAuditExport.ts";
import { authenticate } from "../app/authenticate.ts";
import type { AppDeps } from "../app/deps.ts";
import { can } from "../auth/actor.ts";
import { BadInputError, ForbiddenError, UnauthenticatedError } from "../errors.ts";
import { rateLimitedError, rateLimitHeaders } from "../limits/rateLimits.ts";
import { logContext } from "../logger.ts";
import type { DatabaseHandle } from "../store/db.ts";
import { sendJson } from "./httpErrors.ts";
import { requestMetaOf } from "./requestMeta.ts";

// GET /audit/export: the caller's tenant log as a verifiable NDJSON or CSV file, streamed page by
// page with backpressure. Errors before the first byte are JSON with the stable codes; after it, the
// response is cut, so the file has no end line and its verifier reports it truncated (the server's
// guard answers both: src/http/httpErrors.ts).

const PARAMS = new Set(["from", "to", "fromSequence", "toSequence", "types", "format"]);

export function auditExportRoute(deps: AppDeps, database: Pick<DatabaseHandle, "pool">) {
  async function serve(req: IncomingMessage, res: ServerResponse, query: URLSearchParams) {
    const meta = requestMetaOf(null, req);
    const actor = await authenticate(deps, req.headers.authorization, meta);
    const refusal = { resource: "audit", action: "audit:read", request: meta } as const;
    if (!actor) {
      await deps.security.authFailed({ tenantId: null, actor: null, reason: "missing", ...refusal });
      throw new UnauthenticatedError();
    }
    Object.assign(logContext.getStore() ?? {}, { tenantId: actor.tenantId, actor: actor.subject });
    if (!can(actor, "audit:read")) {
      await deps.security.accessDenied({
        tenantId: actor.tenantId,
        actor,
        reason: "missing-permission",
        ...refusal,
      });
      throw new ForbiddenError("exporting the audit log needs the audit:read permission");
    }
    // Counted as a request of the principal and tenant, and against the tenant's exports of the hour.
    const decision = await deps.limits.checkAuditExport(actor, actor.tenantTier, meta);
    for (const [name, value] of Object.entries(rateLimitHeaders(decision.checks))) res.setHeader(name, value);
    if (decision.refused) throw rateLimitedError(decision.refused);
    const request = parseExportRequest(rawRequestOf(query));
    const file = await startAuditExport(deps, actor, { ...request, via: "http" }, meta, database);
    res.writeHead(200, {
      "content-type": file.contentType,
      "content-disposition": `attachment; filename="${file.fileName}"`,
      "cache-control": "no-store",
      "x-content-type-options": "nosniff",
    });
    await writeChunks(res, file.chunks());
  }

  /** The work of GET /audit/export (its errors are the caller's to answer); undefined for any other path. */
  return function route(req: IncomingMessage, res: ServerResponse, path: string, query: URLSearchParams): Promise<void> | undefined {
    if (path !== "/audit/export") return undefined;
    if (req.method !== "GET") {
      sendJson(res, 405, { error: { code: "BAD_USER_INPUT", message: "use GET" } }, { allow: "GET" });
      return Promise.resolve();
    }
    return serve(req, res, query);
  };
}

function rawRequestOf(query: URLSearchParams): RawExportRequest {
  for (const key of new Set(query.keys())) {
    if (!PARAMS.has(key)) throw new BadInputError(`${key.slice(0, 40)}: unknown parameter (use ${[...PARAMS].join(", ")})`, key.slice(0, 40));
    if (key !== "types" && query.getAll(key).length > 1) throw new BadInputError(`${key}: given more than once`, key);
  }
  const one = (key: string) => query.get(key) ?? undefined;
  return {
    from: one("from"),
    to: one("to"),
    fromSequence: one("fromSequence"),
    toSequence: one("toSequence"),
    types: query.getAll("types"),
    format: one("format"),
  };
}

/**
 * Writes each chunk and waits until the socket took it (backpressure: a slow reader slows the
 * reading of pages; a chunk's memory is reused after it), and stops when the client leaves.
 */
async function writeChunks(res: ServerResponse, chunks: AsyncGenerator<{ data: Buffer }>): Promise<void> {
  let gone = false;
  const onClose = () => (gone = true);
  res.once("close", onClose);
  try {
    for await (const chunk of chunks) {
      if (gone) break; // ends the generator: no further page is read
      await writeFlushed(res, chunk.data);
    }
    if (!gone) res.end();
  } finally {
    res.off("close", onClose);
  }
}

function writeFlushed(res: ServerResponse, data: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("close", done);
      resolve();
    };
    res.once("close", done);
    // The callback runs once the data is handed to the socket, or with an error when it closed.
    res.write(data, done);
  });
}
