import type { KeyObject } from "node:crypto";
import { type AwsKmsOptions, type AwsKmsSettings, awsKmsSigner } from "./awsKmsSigner.ts";
import type { JwtSigner } from "./jwtSigner.ts";
import { memorySigner } from "./memorySigner.ts";
import { type Pkcs11Settings, pkcs11Signer } from "./pkcs11Signer.ts";

/** A signer's settings as the registry read them (appRegistry.ts). */
export type SignerSettings = { kind: "memory"; privateKey: KeyObject } | ({ kind: "pkcs11" } & Pkcs11Settings) | ({ kind: "aws-kms" } & AwsKmsSettings);

export interface SignerOptions {
  awsKms?: AwsKmsOptions;
}

/** The signer for `settings`; nothing is loaded or opened until it is first used. */
export function createSigner(settings: SignerSettings, options: SignerOptions = {}): JwtSigner {
  switch (settings.kind) {
    case "memory":
      return memorySigner(settings.privateKey);
    case "pkcs11":
      return pkcs11Signer(settings);
    case "aws-kms":
      return awsKmsSigner(settings, options.awsKms);
  }
}
