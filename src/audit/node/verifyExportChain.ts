import type { ProblemKind, VerificationReport } from "../verifyAuditRecords.ts";
import { signatureOf, type EndRecord, type HeaderRecord } from "../exportFormat.ts";
import type { ExportInput } from "./readExportFile.ts";
import { verifyExportFile, type ExportFileLines, type VerifyFileOptions } from "./verifyExportFile.ts";

// `keyplane audit verify FILE FILE…`: a tenant's history in several export files (the archives
// written before pruning, then the live export), oldest first, verified each on its own
// (verifyExportFile) and then as one chain: each file must start where the one before it ends.
//
// The link needs nothing new to be trusted: a file's end (lastSequence, lastChainHash) is signed by
// its end line, and the next file's anchor is a signed checkpoint whose sequence and chain hash the
// next file's end line signs too. Equal values at equal sequences mean one chain, and the files
// between them leave no sequence out. A file with a filter (types, from, to) or a range starting
// after its anchor still links: its rows outside the range or filter are stubs, whose hashes carry
// the chain. They are counted as `omitted`, events whose content none of the files shows.

/** One file of the chain, opened when its turn comes (one file open at a time). */
export interface ChainFile {
  name: string;
  open: () => Promise<ExportInput>;
}

/** Why two neighbouring files are not one chain. */
export type LinkProblemKind =
  /** The files are logs of two tenants. */
  | "other-tenant"
  /** Sequences between the end of one file and the anchor of the next are in neither. */
  | "gap"
  /** The next file starts before the previous one ends: sequences in both. */
  | "overlap"
  /** The next file lies wholly before the previous one: the files were given out of order. */
  | "out-of-order"
  /** Same sequence, but not the same chain hash or checkpoint: not one chain. */
  | "not-linked";

export interface ChainProblem {
  /** A problem of the file on its own (the verifier's kind), or of its link to the previous file. */
  kind: ProblemKind | LinkProblemKind;
  file: string;
  /** The file before it, for a link problem; null for a problem of the file on its own. */
  previousFile: string | null;
  sequence: number | null;
  message: string;
}

export interface ChainFileReport extends VerificationReport {
  file: string;
  /** The header's fromSequence (the first sequence shown in full, unless filtered), once proven. */
  fromSequence: number | null;
}

export interface ExportChainReport {
  ok: boolean;
  /** The first file's tenant. */
  tenantId: string | null;
  files: number;
  /** Where the first file's chain starts: the tenant's genesis, or a signed checkpoint. */
  startsFrom: "genesis" | "checkpoint" | null;
  anchor: { type: "genesis" | "checkpoint"; sequence: number; chainHash: string } | null;
  /** The first file's fromSequence. */
  fromSequence: number | null;
  /** The last file's end. */
  lastSequence: number | null;
  lastChainHash: string | null;
  /** Totals over the files. */
  events: number;
  omitted: number;
  checkpoints: number;
  signatures: "verified" | "unchecked";
  /** Each file on its own, in the order given. */
  reports: ChainFileReport[];
  /** Every problem, by file in the order given: a file's own, then its link to the previous file. */
  problems: ChainProblem[];
}

/** What a file's link is checked with: its report and its proven header and end lines. */
interface VerifiedFile {
  name: string;
  report: VerificationReport;
  header: HeaderRecord;
  end: EndRecord;
}

/** Verifies the files one by one (all of them, whatever an earlier one showed), then each link. */
export async function verifyExportChain(files: ChainFile[], options: Omit<VerifyFileOptions, "lines"> = {}): Promise<ExportChainReport> {
  const reports: ChainFileReport[] = [];
  const problems: ChainProblem[] = [];
  const verified: Array<VerifiedFile | undefined> = [];
  for (const file of files) {
    const lines: ExportFileLines = {};
    const report = await verifyExportFile(await file.open(), { ...options, lines });
    const proven = report.ok && lines.header && lines.end ? { name: file.name, report, header: lines.header, end: lines.end } : undefined;
    reports.push({ file: file.name, ...report, fromSequence: proven?.header.fromSequence ?? null });
    if (report.problem) problems.push({ ...report.problem, file: file.name, previousFile: null });
    // A link is checked between proven files only: a failed file's header and end say nothing.
    const previous = verified.at(-1);
    if (previous && proven) {
      const problem = linkProblem(previous, proven);
      if (problem) problems.push(problem);
    }
    verified.push(proven);
  }

  const first = verified[0];
  const last = verified.at(-1);
  const sum = (count: (r: VerificationReport) => number) => reports.reduce((total, r) => total + count(r), 0);
  return {
    ok: problems.length === 0 && reports.length > 0,
    tenantId: reports[0]?.tenantId ?? null,
    files: files.length,
    startsFrom: reports[0]?.startsFrom ?? null,
    anchor: first ? { type: first.header.anchor.type, sequence: first.header.anchor.sequence, chainHash: first.header.anchor.chainHash } : null,
    fromSequence: first?.header.fromSequence ?? null,
    lastSequence: last?.report.lastSequence ?? null,
    lastChainHash: last?.report.lastChainHash ?? null,
    events: sum((r) => r.events),
    omitted: sum((r) => r.omitted),
    checkpoints: sum((r) => r.checkpoints),
    signatures: reports.every((r) => r.signatures === "verified") ? "verified" : "unchecked",
    reports,
    problems,
  };
}

/** Whether `next` starts exactly where `previous` ends, in the same tenant's chain; null when it does. */
function linkProblem(previous: VerifiedFile, next: VerifiedFile): ChainProblem | null {
  const problem = (kind: LinkProblemKind, sequence: number | null, message: string): ChainProblem => ({
    kind,
    file: next.name,
    previousFile: previous.name,
    sequence,
    message,
  });
  const [before, after] = [previous.header, next.header];
  if (after.tenantId !== before.tenantId) {
    return problem("other-tenant", null, `${next.name} is tenant ${after.tenantId}'s log, ${previous.name} tenant ${before.tenantId}'s`);
  }
  const ends = previous.end.lastSequence;
  const starts = after.anchor.sequence;
  const runOf = (file: VerifiedFile) => `sequences ${file.header.anchor.sequence + 1}–${file.end.lastSequence}`;
  const anchorOf = (file: VerifiedFile) => (file.header.anchor.type === "genesis" ? "genesis" : `the checkpoint at ${file.header.anchor.sequence}`);
  if (starts > ends) {
    return problem(
      "gap",
      ends + 1,
      `sequences ${ends + 1}–${starts} are in no file: ${previous.name} ends at ${ends}, ${next.name} starts from ${anchorOf(next)}`,
    );
  }
  if (starts < ends) {
    if (next.end.lastSequence <= before.anchor.sequence) {
      return problem("out-of-order", null, `${next.name} (${runOf(next)}) comes before ${previous.name} (${runOf(previous)}): give the files oldest first`);
    }
    return problem(
      "overlap",
      starts + 1,
      `${next.name} starts from ${anchorOf(next)}, inside ${previous.name} (which ends at ${ends}): sequences ${starts + 1}–${Math.min(ends, next.end.lastSequence)} are in both`,
    );
  }
  if (after.anchor.chainHash !== previous.end.lastChainHash) {
    return problem(
      "not-linked",
      starts,
      `${next.name} starts from chain hash ${after.anchor.chainHash} at ${starts}, but ${previous.name} ends with ${previous.end.lastChainHash}: not one chain`,
    );
  }
  // Both files name a checkpoint at the link: it must be one checkpoint (one is signed per sequence).
  const lastCheckpoint = previous.end.lastCheckpoint;
  if (after.anchor.type === "checkpoint" && lastCheckpoint?.sequence === starts && lastCheckpoint.signature !== signatureOf(after.anchor.jws)) {
    return problem("not-linked", starts, `${next.name} starts from another checkpoint at ${starts} than the one ${previous.name} ends with`);
  }
  return null;
}
