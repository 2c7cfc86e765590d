import { parseArgs } from "node:util";
import { parseExportRequest, type AuditExportRequest } from "../app/audit/parseExportRequest.ts";
import { BadInputError } from "../errors.ts";
import { UsageError } from "./command.ts";

// The command lines of `keyplane audit …`, checked before any configuration or database is touched.

export type AuditCommand =
  | { command: "export"; tenantId: string; out: string; request: AuditExportRequest }
  /** Several files: a tenant's archives and live export, oldest first, verified as one chain. */
  | { command: "verify"; files: string[]; jwks?: string; json: boolean; threads?: number }
  | {
      command: "verify-stream";
      files: string[];
      checkpoints: string[];
      jwks?: string;
      tenantId?: string;
      json: boolean;
      requireCheckpoint: boolean;
      allowGaps: boolean;
    }
  | { command: "checkpoint"; tenantId?: string }
  /** Retention now: the tenant named, or every tenant not under legal hold. */
  | { command: "prune"; tenantId?: string; json: boolean };

const FLAG_OF: Record<string, string> = {
  from: "--from",
  to: "--to",
  fromSequence: "--from-sequence",
  toSequence: "--to-sequence",
  types: "--types",
  format: "--format",
};

export function parseAuditArgs(sub: string | undefined, args: string[]): AuditCommand {
  switch (sub) {
    case "export": {
      const { values: v } = parseArgs({
        args,
        strict: true,
        allowPositionals: false,
        options: {
          tenant: { type: "string" },
          out: { type: "string" },
          from: { type: "string" },
          to: { type: "string" },
          "from-sequence": { type: "string" },
          "to-sequence": { type: "string" },
          types: { type: "string", multiple: true },
          format: { type: "string" },
        },
      });
      if (!v.tenant) throw new UsageError("audit export needs --tenant (the tenant's id)");
      if (!v.out) throw new UsageError("audit export needs --out (a file, or - for stdout)");
      try {
        const request = parseExportRequest({
          from: v.from,
          to: v.to,
          fromSequence: v["from-sequence"],
          toSequence: v["to-sequence"],
          types: v.types,
          format: v.format,
        });
        return { command: "export", tenantId: v.tenant, out: v.out, request };
      } catch (error) {
        if (!(error instanceof BadInputError)) throw error;
        const flag = FLAG_OF[error.field ?? ""] ?? error.field;
        throw new UsageError(`invalid ${flag}: ${error.message.replace(/^[^:]*:\s*/, "")}`);
      }
    }
    case "verify": {
      const { values: v, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: { jwks: { type: "string" }, json: { type: "boolean" }, threads: { type: "string" } },
      });
      if (positionals.length === 0) {
        throw new UsageError(
          "audit verify needs a FILE (an export, NDJSON or CSV; several: archives and the live export, oldest first, verified as one chain)",
        );
      }
      if (positionals.filter((f) => f === "-").length > 1) throw new UsageError("audit verify reads stdin once: - stands for one FILE");
      let threads: number | undefined;
      if (v.threads !== undefined) {
        threads = /^\d{1,3}$/.test(v.threads) ? Number(v.threads) : NaN;
        if (!(threads <= 256)) throw new UsageError("invalid --threads: a number of threads, 0 or 1 for one core");
      }
      return { command: "verify", files: positionals, jwks: v.jwks, json: Boolean(v.json), ...(threads === undefined ? {} : { threads }) };
    }
    case "verify-stream": {
      const { values: v, positionals } = parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          checkpoint: { type: "string", multiple: true },
          jwks: { type: "string" },
          tenant: { type: "string" },
          json: { type: "boolean" },
          "require-checkpoint": { type: "boolean" },
          "allow-gaps": { type: "boolean" },
        },
      });
      if (positionals.length === 0) throw new UsageError("audit verify-stream needs a FILE of delivered events (or several; - for stdin)");
      const checkpoints = v.checkpoint ?? [];
      if (checkpoints.length === 0) {
        throw new UsageError("audit verify-stream needs --checkpoint FILE: Keyplane's answer to the auditCheckpoint query (- for stdin)");
      }
      if ([...positionals, ...checkpoints].filter((f) => f === "-").length > 1) {
        throw new UsageError("audit verify-stream reads stdin once: - stands for one FILE or one --checkpoint");
      }
      if (v.tenant === "") throw new UsageError("invalid --tenant: a tenant's id");
      return {
        command: "verify-stream",
        files: positionals,
        checkpoints,
        ...(v.jwks === undefined ? {} : { jwks: v.jwks }),
        ...(v.tenant === undefined ? {} : { tenantId: v.tenant }),
        json: Boolean(v.json),
        requireCheckpoint: Boolean(v["require-checkpoint"]),
        allowGaps: Boolean(v["allow-gaps"]),
      };
    }
    case "checkpoint": {
      const { values: v } = parseArgs({ args, strict: true, allowPositionals: false, options: { tenant: { type: "string" } } });
      return { command: "checkpoint", tenantId: v.tenant };
    }
    case "prune": {
      const { values: v } = parseArgs({ args, strict: true, allowPositionals: false, options: { tenant: { type: "string" }, json: { type: "boolean" } } });
      if (v.tenant === "") throw new UsageError("invalid --tenant: a tenant's id");
      return { command: "prune", ...(v.tenant === undefined ? {} : { tenantId: v.tenant }), json: Boolean(v.json) };
    }
    default:
      throw new UsageError(sub ? `unknown audit command: ${sub}` : "audit needs a command: export, verify, verify-stream, checkpoint or prune");
  }
}
