import { execFileSync } from "node:child_process";
import { createPrivateKey, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { registerSecret } from "./secrets.ts";

// SoftHSM2 (Debian's softhsm2) as the PKCS#11 token GitHub App keys are imported into, for the
// signer tests and for e2e runs that keep the app key out of Keyplane. Each token lives in a
// directory of its own, named by SOFTHSM2_CONF, which SoftHSM reads at C_Initialize: a process given
// `env` sees only that token.

export const SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so";

function commandExists(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function pkcs11jsInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve("pkcs11js");
    return true;
  } catch {
    return false;
  }
}

/** SoftHSM2 and the optional pkcs11js are both here; otherwise PKCS#11 tests skip with SKIPPED_WITHOUT_SOFTHSM. */
export const softHsmAvailable = existsSync(SOFTHSM_MODULE) && commandExists("softhsm2-util") && pkcs11jsInstalled();
export const SKIPPED_WITHOUT_SOFTHSM = "no SoftHSM2 (apt-get install softhsm2) or the optional package pkcs11js is not built (npm install pkcs11js)";

export interface SoftHsmToken {
  label: string;
  pin: string;
  /** A file holding the PIN (mode 0600), for GITHUB_APP_<NAME>_PKCS11_PIN_FILE. */
  pinFile: string;
  /** SOFTHSM2_CONF for a process that should see this token. */
  conf: string;
  /** Imports an RSA private key (PKCS#1 or PKCS#8 PEM) under `keyLabel`; the file it went through is emptied at once. */
  importKey(pem: string, keyLabel: string, id?: string): void;
  /** The GITHUB_APP_[<NAME>_]* variables of an app whose key is `keyLabel` on this token (no PRIVATE_KEY). */
  appEnv(keyLabel: string, name?: string): Record<string, string>;
}

/** A new token in `dir` (which must be empty and private to the caller). The PIN is registered with the log scan. */
export function softHsmToken(dir: string): SoftHsmToken {
  const label = `keyplane-${randomBytes(3).toString("hex")}`;
  const pin = `pin-${randomBytes(8).toString("hex")}`;
  registerSecret(pin);
  mkdirSync(path.join(dir, "tokens"));
  const conf = path.join(dir, "softhsm2.conf");
  writeFileSync(conf, `directories.tokendir = ${path.join(dir, "tokens")}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const util = (...args: string[]) => execFileSync("softhsm2-util", args, { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: "pipe" });
  util("--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", `so-${pin}`);
  const pinFile = path.join(dir, "pin");
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  return {
    label,
    pin,
    pinFile,
    conf,
    importKey(pem, keyLabel, id = "01") {
      // softhsm2-util imports PKCS#8; GitHub's download is PKCS#1.
      const keyFile = path.join(dir, `${keyLabel}.pem`);
      writeFileSync(keyFile, createPrivateKey(pem).export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
      try {
        util("--import", keyFile, "--token", label, "--label", keyLabel, "--id", id, "--pin", pin);
      } finally {
        writeFileSync(keyFile, "");
      }
    },
    appEnv(keyLabel, name) {
      const prefix = name ? `GITHUB_APP_${name.toUpperCase().replace(/-/g, "_")}_` : "GITHUB_APP_";
      return {
        [`${prefix}SIGNER`]: "pkcs11",
        [`${prefix}PKCS11_MODULE`]: SOFTHSM_MODULE,
        [`${prefix}PKCS11_TOKEN_LABEL`]: label,
        [`${prefix}PKCS11_PIN_FILE`]: pinFile,
        [`${prefix}PKCS11_KEY_LABEL`]: keyLabel,
      };
    },
  };
}
