import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

/**
 * A self-signed certificate for local HTTPS servers of the tests: EC P-256, CN=localhost, valid for
 * localhost and 127.0.0.1 for one day. A client trusts it by taking `cert` as its CA. Made once per
 * process with the openssl CLI (no key material is kept on disk).
 */
export interface SelfSignedCert {
  key: string;
  cert: string;
}

let made: SelfSignedCert | undefined;

export function selfSignedCert(): SelfSignedCert {
  if (made) return made;
  const dir = mkdtempSync(path.join(tmpdir(), "keyplane-cert-"));
  try {
    const keyFile = path.join(dir, "key.pem");
    const certFile = path.join(dir, "cert.pem");
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        keyFile,
        "-out",
        certFile,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    made = { key: readFileSync(keyFile, "utf8"), cert: readFileSync(certFile, "utf8") };
    return made;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
