import type { Config } from "../../config.ts";
import { noArgs } from "../args.ts";
import { UsageError, type CliIo, type CommandGroup } from "../command.ts";
import { progressReporter } from "../progress.ts";
import { withKeyplane } from "../withKeyplane.ts";

export const keysGroup: CommandGroup = {
  name: "keys",
  usage: `  keys generate                           print a new id:base64key entry for KEYPLANE_ENCRYPTION_KEYS
  keys rotate                             re-encrypt every stored secret under the first (current) key
                                          of KEYPLANE_ENCRYPTION_KEYS; resumable
`,
  parse([sub, ...rest]) {
    if (sub === "generate" || sub === "rotate") {
      noArgs(`keys ${sub}`, rest);
      return sub === "generate" ? keysGenerate : keysRotate;
    }
    throw new UsageError(sub ? `unknown keys command: ${sub}` : "keys needs a command: generate or rotate");
  },
};

async function keysGenerate(_config: Config, io: CliIo): Promise<number> {
  const { generateKeyEntry } = await import("../../crypto/keyring.ts");
  io.out(`${generateKeyEntry()}\n`);
  io.err("Put it first in KEYPLANE_ENCRYPTION_KEYS (keep the old keys after it), restart, then run: keyplane keys rotate\n");
  return 0;
}

async function keysRotate(config: Config, io: CliIo): Promise<number> {
  return withKeyplane(config, async (kp) => {
    const { rotateEncryptionKeys } = await import("../../app/installations/rotateEncryptionKeys.ts");
    const progress = progressReporter("re-encrypting installation secrets", io.err, Boolean(io.isTty));
    const result = await rotateEncryptionKeys(kp.deps, progress.update);
    progress.done();
    io.out(
      `re-encrypted ${result.installations} installation(s), ${result.oauthStates} pending OAuth state(s), ${result.logStreams} log stream(s), ${result.githubTokens} GitHub token(s) and ${result.identities} linked identity secret(s) under key ${kp.deps.keyring.currentKeyId}\n`,
    );
    return 0;
  });
}
