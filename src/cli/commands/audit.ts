import { parseAuditArgs } from "../auditArgs.ts";
import type { CommandGroup } from "../command.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const auditGroup: CommandGroup = {
  name: "audit",
  usage: `  audit export --tenant ID --out FILE [--from ISO] [--to ISO] [--from-sequence N] [--to-sequence N]
               [--types TYPE[,TYPE...]...] [--format ndjson|csv]
                                          export the tenant's log, read from the database, as a verifiable file
                                          (--out - for stdout); recorded as an audit.exported event; progress on stderr
  audit verify FILE [--jwks FILE|URL] [--json] [--threads N]
                                          verify an export (NDJSON or CSV; - for stdin) with nothing but the file and
                                          Keyplane's JWKS (/.well-known/jwks.json): names the first modified, deleted,
                                          inserted or reordered sequence; exit 0 intact, 1 not. --threads: threads that
                                          check lines (default: the cores, at most 8; 0 or 1: one core)
  audit checkpoint [--tenant ID]          sign a checkpoint of the hash chain now (every tenant with new events)
`,
  parse([sub, ...rest]) {
    const audit = parseAuditArgs(sub, rest);
    return async (config, io) => {
      const commands = await import("../auditCommands.ts");
      if (audit.command === "verify") return commands.runAuditVerify(audit, io);
      return withKeyplane(config, (kp) => (audit.command === "export" ? commands.runAuditExport(kp, audit, io) : commands.runAuditCheckpoint(kp, audit, io)));
    };
  },
};
