import { createPublicKey, type KeyObject } from "node:crypto";
import type { KMSClient, KMSClientConfig } from "@aws-sdk/client-kms";
import { type JwtSigner, SignerError } from "./jwtSigner.ts";

// A GitHub App key in AWS KMS: an asymmetric RSA key (RSA_2048 or larger, key usage SIGN_VERIFY)
// that never leaves KMS. Each JWT is one KMS Sign call; GetPublicKey is read once (the check at
// start, and the fingerprint in the log).
//
// MessageType RAW, not DIGEST: the JWT's signing input is a few hundred bytes, far under RAW's 4096,
// and with RAW KMS hashes what it signs itself, so there is no hashing of ours to get wrong and a key
// policy can pin `kms:MessageType` to RAW (an IAM principal allowed to sign only RAW messages can only
// have KMS sign what it was sent, never a digest computed elsewhere).
//
// Credentials come from the AWS SDK's default chain: IRSA / web identity (AWS_ROLE_ARN and
// AWS_WEB_IDENTITY_TOKEN_FILE, set by EKS), environment keys, the instance role. Keyplane reads none of
// them itself and never logs them. @aws-sdk/client-kms is imported only when an app uses this signer.

export interface AwsKmsSettings {
  /** Key id, key ARN, alias name (alias/…) or alias ARN. */
  keyId: string;
  /** The key's region; default: the ARN's region, else the SDK's (AWS_REGION). */
  region?: string;
  /** Another endpoint: a VPC endpoint, or a test's fake. */
  endpoint?: string;
}

export interface AwsKmsOptions {
  /** Tests: credentials instead of the default chain, and a bound on retries. */
  client?: Partial<KMSClientConfig>;
}

// Answers that depend on configuration or permissions: retrying does not help.
const PROBLEMS: Record<string, string> = {
  NotFoundException: "KMS found no such key",
  AccessDeniedException: "KMS denied the request (the role's policy must allow kms:Sign and kms:GetPublicKey on this key)",
  InvalidKeyUsageException: "the key cannot sign with RSASSA_PKCS1_V1_5_SHA_256 (it must be an RSA key with key usage SIGN_VERIFY)",
  DisabledException: "the key is disabled",
  KMSInvalidStateException: "the key is not usable in its current state (pending deletion or import?)",
  ValidationException: "KMS refused the request as invalid",
  InvalidSignatureException: "KMS refused the request's AWS signature (wrong secret access key or clock?)",
  UnrecognizedClientException: "KMS does not know the access key (wrong or expired credentials)",
  ExpiredTokenException: "the AWS session credentials have expired",
  IncompleteSignature: "KMS refused the request's AWS signature as incomplete",
  CredentialsProviderError: "no AWS credentials were found (IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE; or AWS_ACCESS_KEY_ID)",
};

export function awsKmsSigner(settings: AwsKmsSettings, options: AwsKmsOptions = {}): JwtSigner {
  const region = settings.region ?? /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(settings.keyId)?.[1];
  const where = `aws-kms key ${settings.keyId}${region ? ` in ${region}` : ""}`;
  let client: Promise<{ kms: KMSClient; sdk: typeof import("@aws-sdk/client-kms") }> | undefined;
  let publicKey: Promise<KeyObject> | undefined;
  let closed = false;
  // Calls under way: close() lets them finish before the client's connections are destroyed.
  const underWay = new Set<Promise<unknown>>();
  const track = <T>(call: Promise<T>): Promise<T> => {
    underWay.add(call);
    void call.then(
      () => underWay.delete(call),
      () => underWay.delete(call),
    );
    return call;
  };

  function connect() {
    if (closed) return Promise.reject(new SignerError(`${where}: the signer is closed`));
    client ??= import("@aws-sdk/client-kms").then(
      (sdk) => ({
        sdk,
        kms: new sdk.KMSClient({
          ...(region ? { region } : {}),
          ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
          ...options.client,
        }),
      }),
      (error: unknown) => {
        client = undefined;
        throw new SignerError(`@aws-sdk/client-kms could not be loaded (${error instanceof Error ? error.message.split("\n")[0] : "error"})`);
      },
    );
    return client;
  }

  /** A KMS or SDK failure as a SignerError: KMS's error name and the first line of its message (ARNs, never a credential). */
  function fail(action: string, error: unknown): SignerError {
    if (error instanceof SignerError) return error;
    const name = error instanceof Error ? error.name : "Error";
    const said = error instanceof Error ? error.message.split("\n")[0]!.slice(0, 300) : "";
    const problem = PROBLEMS[name];
    if (/Region is missing/i.test(said)) return new SignerError(`${where}: no region (set the app's KMS region, use the key's ARN, or AWS_REGION)`);
    if (problem) return new SignerError(`${where}: ${action}: ${problem} (${name}${said ? `: ${said}` : ""})`);
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    // Throttling, 5xx, timeouts, refused connections: KMS may answer later.
    return new SignerError(
      `${where}: ${action} failed (${name}${status ? `, HTTP ${status}` : ""}${said ? `: ${said}` : ""})`,
      status === undefined || status >= 500 || status === 429 || /Throttl|LimitExceeded/.test(name),
    );
  }

  return {
    kind: "aws-kms",
    where,
    async sign(data) {
      const { kms, sdk } = await connect();
      try {
        const answer = await track(
          kms.send(new sdk.SignCommand({ KeyId: settings.keyId, Message: data, MessageType: "RAW", SigningAlgorithm: "RSASSA_PKCS1_V1_5_SHA_256" })),
        );
        if (!answer.Signature?.length) throw new SignerError(`${where}: kms:Sign answered without a signature`, true);
        return answer.Signature;
      } catch (error) {
        throw fail("kms:Sign", error);
      }
    },
    publicKey() {
      publicKey ??= (async () => {
        const { kms, sdk } = await connect();
        try {
          const answer = await track(kms.send(new sdk.GetPublicKeyCommand({ KeyId: settings.keyId })));
          if (answer.KeyUsage !== undefined && answer.KeyUsage !== "SIGN_VERIFY")
            throw new SignerError(`${where}: the key's usage is ${answer.KeyUsage}, not SIGN_VERIFY`);
          if (answer.SigningAlgorithms && !answer.SigningAlgorithms.includes("RSASSA_PKCS1_V1_5_SHA_256"))
            throw new SignerError(
              `${where}: the key cannot sign with RSASSA_PKCS1_V1_5_SHA_256 (its spec is ${answer.KeySpec ?? "unknown"}; an RSA_2048 or larger key is needed)`,
            );
          if (!answer.PublicKey) throw new SignerError(`${where}: kms:GetPublicKey answered without a public key`, true);
          return createPublicKey({ key: Buffer.from(answer.PublicKey), format: "der", type: "spki" });
        } catch (error) {
          throw fail("kms:GetPublicKey", error);
        }
      })();
      // A failure is not remembered: the next check asks again.
      publicKey.catch(() => {
        publicKey = undefined;
      });
      return publicKey;
    },
    async close() {
      if (closed) return;
      closed = true;
      const opened = client;
      client = undefined;
      await Promise.allSettled([...underWay]);
      if (opened) (await opened.catch(() => undefined))?.kms.destroy();
    },
  };
}
