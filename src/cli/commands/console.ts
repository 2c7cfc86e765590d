import path from "node:path";
import {
  SIGN_IN_CODE_DEFAULT_TTL_SECONDS,
  SIGN_IN_CODE_MAX_TTL_SECONDS as MAX_TTL_SECONDS,
  SIGN_IN_CODE_MIN_TTL_SECONDS as MIN_TTL_SECONDS,
} from "../../app/sessions/signInCodeLimits.ts";
import { PLATFORM_TENANT } from "../../auth/actor.ts";
import type { Config } from "../../config.ts";
import { roleSchema, type Role } from "../../domain/eventDefinition.ts";
import { asUsage, oneOf, parse } from "../args.ts";
import { UsageError, type Command, type CommandGroup } from "../command.ts";

// `keyplane console link`: a one-time sign-in link for the console. It is signed with Keyplane's key
// and needs no database, so it runs beside `keyplane serve` on the embedded database too.

export const consoleGroup: CommandGroup = {
  name: "console",
  usage: `  console link --tenant ID [--role ROLE...] [--sub SUBJECT] [--ttl SECONDS]
                                          print a one-time sign-in link for the console (role admin,
                                          subject console-link, ${SIGN_IN_CODE_DEFAULT_TTL_SECONDS} seconds by default, at most ${MAX_TTL_SECONDS});
                                          needs no database: works while keyplane serve runs
`,
  parse([sub, ...rest]) {
    if (sub === "link") return consoleLink(rest);
    throw new UsageError(sub ? `unknown console command: ${sub}` : "console needs a command: link");
  },
};

function consoleLink(args: string[]): Command {
  const v = parse(args, {
    tenant: { type: "string" },
    role: { type: "string", multiple: true },
    sub: { type: "string" },
    ttl: { type: "string" },
  });
  const roles = ((v.role as string[] | undefined) ?? ["admin"]).map((r) => oneOf("--role", r, roleSchema.options));
  const platform = roles.includes("platform");
  if (platform && roles.length > 1) throw new UsageError("--role platform cannot be combined with other roles");
  if (platform && v.tenant !== undefined) throw new UsageError("--role platform signs in a platform operator: leave out --tenant");
  const tenantId = platform ? PLATFORM_TENANT : (v.tenant as string | undefined);
  if (!tenantId) throw new UsageError("console link needs --tenant (or --role platform)");
  let ttl: number | undefined;
  if (v.ttl !== undefined) {
    ttl = Number(v.ttl);
    if (!/^\d+$/.test(v.ttl as string) || ttl < MIN_TTL_SECONDS || ttl > MAX_TTL_SECONDS) {
      throw new UsageError(`--ttl is a whole number of seconds from ${MIN_TTL_SECONDS} to ${MAX_TTL_SECONDS} (got '${v.ttl}')`);
    }
  }
  return async (config, io) => {
    const [{ mintSignInCode, SignInCodeInput }, { createTokenMinter }, { parseInput }] = await Promise.all([
      import("../../app/sessions/signInCode.ts"),
      import("../../auth/tokenMinter.ts"),
      import("../../domain/validation.ts"),
    ]);
    // The input first: a typo is a usage error whether or not there is a key to sign with.
    const input = await asUsage(
      (async () => parseInput(SignInCodeInput, { tenantId, roles: roles as Role[], subject: v.sub as string | undefined, ttlSeconds: ttl }))(),
    );
    const keys = await signingKeysOf(config);
    const now = () => new Date();
    const issued = await mintSignInCode({ config, now, minter: createTokenMinter(keys, config.auth.issuer, config.auth.audience) }, input);
    io.out(`${issued.link}\n`);
    io.err(
      `This link signs in once, as ${input.subject} (${input.roles.join(", ")}) in ${platform ? "the platform" : `tenant ${tenantId}`}; ` +
        `it expires at ${issued.expiresAt.toISOString()}. Whoever opens it first is signed in: give it to no one else.\n`,
    );
    return 0;
  };
}

/** Keyplane's signing key, as `keyplane serve` loads it, but never generated: a key of the CLI's own would sign links nobody accepts. */
async function signingKeysOf(config: Config) {
  const { loadSigningKeys, SigningKeyError } = await import("../../auth/signingKeys.ts");
  try {
    return await loadSigningKeys({ pem: config.auth.signingKey, previousPems: config.auth.previousSigningKeys, dataDir: config.dataDir, allowGenerate: false });
  } catch (error) {
    if (error instanceof SigningKeyError && !config.auth.signingKey && !config.database.url) {
      throw new Error(`no signing key in ${path.resolve(config.dataDir)} yet: start keyplane serve once first (or set KEYPLANE_SIGNING_KEY)`);
    }
    throw error;
  }
}
