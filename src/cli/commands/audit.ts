import { parseAuditArgs } from "../auditArgs.ts";
import type { CommandGroup } from "../command.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const auditGroup: CommandGroup = {
  name: "audit",
  usage: `  audit export --tenant ID --out FILE [--from ISO] [--to ISO] [--from-sequence N] [--to-sequence N]
               [--types TYPE[,TYPE...]...] [--format ndjson|csv]
                                          export the tenant's log, read from the database, as a verifiable file
                                          (--out - for stdout); recorded as an audit.exported event; progress on stderr
  audit verify FILE [FILE...] [--jwks FILE|URL] [--json] [--threads N]
                                          verify an export (NDJSON or CSV; - for stdin) with nothing but the file and
                                          Keyplane's JWKS (/.well-known/jwks.json): names the first modified, deleted,
                                          inserted or reordered sequence; exit 0 intact, 1 not. Several files (retention's
                                          archives, then the live export, oldest first): each verified, and as one chain,
                                          each anchored where the one before ends. --threads: threads that check lines
                                          (default: the cores, at most 8; 0 or 1: one core)
  audit verify-stream FILE... --checkpoint FILE|- [--jwks FILE|URL] [--tenant ID] [--json] [--require-checkpoint]
               [--allow-gaps]
                                          verify events a log stream delivered (webhook bodies, Splunk HEC events,
                                          Datadog entries or event records, one a line; - for stdin) against a signed
                                          checkpoint (the auditCheckpoint query's answer): per tenant, repeats dropped,
                                          content hashes, no gaps, the chain, the checkpoint's chain hash. Exit 0 intact,
                                          1 not. --require-checkpoint: the events must reach the checkpoint;
                                          --allow-gaps: a stream filtered by type (gaps counted, not refused)
  audit checkpoint [--tenant ID]          sign a checkpoint of the hash chain now (every tenant with new events)
  audit prune [--tenant ID] [--json]      run retention now (every tenant not under legal hold): prune events older
                                          than the tenant's period up to a signed checkpoint, archiving each range
                                          first when AUDIT_ARCHIVE_DIR is set; prints each tenant's pruned ranges and
                                          archives (or nothing, held, busy). Exit 0, 1 when a tenant failed
`,
  parse([sub, ...rest]) {
    const audit = parseAuditArgs(sub, rest);
    return async (config, io) => {
      const commands = await import("../auditCommands.ts");
      if (audit.command === "verify") return commands.runAuditVerify(audit, io);
      if (audit.command === "verify-stream") return commands.runAuditVerifyStream(audit, io);
      return withKeyplane(config, (kp) => {
        if (audit.command === "export") return commands.runAuditExport(kp, audit, io);
        if (audit.command === "prune") return commands.runAuditPrune(kp, audit, io);
        return commands.runAuditCheckpoint(kp, audit, io);
      });
    };
  },
};
