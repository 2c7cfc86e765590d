import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  privateEncrypt,
  randomUUID,
  sign,
  timingSafeEqual,
  constants,
  type KeyObject,
} from "node:crypto";
import { createClock, type FakeRequest, type FakeResponse, type FakeServer, startFakeServer } from "./fakeServer.ts";

/**
 * A local AWS KMS speaking its JSON protocol (POST / with X-Amz-Target: TrentService.<Action>,
 * Content-Type: application/x-amz-json-1.1), for the GitHub App signer's aws-kms mode. It checks what
 * KMS checks, in the order KMS does:
 * - the SigV4 Authorization header's shape (AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/kms/aws4_request,
 *   SignedHeaders=… with host and x-amz-date, Signature=<64 hex>), the access key id (UnrecognizedClientException),
 *   and the signature itself, recomputed with the secret access key it was given (InvalidSignatureException);
 * - the caller's permission for the action on the key (AccessDeniedException, KMS's own wording);
 * - the KeyId, by key id, key ARN, alias name or alias ARN in the request's region (NotFoundException);
 * - the request's fields (ValidationException) and that the key can do it (InvalidKeyUsageException).
 * It holds RSA private keys given to it and implements Sign (RAW or DIGEST messages) and GetPublicKey.
 */

export interface FakeKmsKey {
  keyId: string;
  arn: string;
  /** alias/<name> when one was given. */
  alias?: string;
}

export interface FakeKmsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface FakeKms extends FakeServer {
  region: string;
  account: string;
  /** Adds a key made from a private key (PEM or KeyObject); RSA keys sign with the RSASSA algorithms, the usage is SIGN_VERIFY unless told. */
  addKey(options: { privateKey: string | KeyObject; alias?: string; keyUsage?: "SIGN_VERIFY" | "ENCRYPT_DECRYPT"; enabled?: boolean }): FakeKmsKey;
  /** A caller: its access key id and secret, allowed these actions (kms:Sign, kms:GetPublicKey) on these key ARNs ("*" for all). */
  addCredentials(options?: { actions?: string[]; keys?: string[] }): FakeKmsCredentials;
  /** What each request asked, in order: the action and its answer (never a message or a signature). */
  calls: Array<{ action: string; status: number; error?: string }>;
}

interface KeyRecord extends FakeKmsKey {
  privateKey: KeyObject;
  keyUsage: "SIGN_VERIFY" | "ENCRYPT_DECRYPT";
  enabled: boolean;
  keySpec: string;
}

const RSA_ALGORITHMS = [
  "RSASSA_PSS_SHA_256",
  "RSASSA_PSS_SHA_384",
  "RSASSA_PSS_SHA_512",
  "RSASSA_PKCS1_V1_5_SHA_256",
  "RSASSA_PKCS1_V1_5_SHA_384",
  "RSASSA_PKCS1_V1_5_SHA_512",
];
const ALL_ALGORITHMS = [...RSA_ALGORITHMS, "ECDSA_SHA_256", "ECDSA_SHA_384", "ECDSA_SHA_512", "SM2DSA"];
// DER prefixes of DigestInfo, for RSASSA-PKCS1-v1_5 over a digest the caller computed.
const DIGEST_INFO: Record<string, Buffer> = {
  sha256: Buffer.from("3031300d060960864801650304020105000420", "hex"),
  sha384: Buffer.from("3041300d060960864801650304020205000430", "hex"),
  sha512: Buffer.from("3051300d060960864801650304020305000440", "hex"),
};
const DIGEST_BYTES: Record<string, number> = { sha256: 32, sha384: 48, sha512: 64 };

const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([A-Z0-9]{16,128})\/(\d{8})\/([a-z0-9-]+)\/kms\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

export async function startFakeKms(options: { region?: string; account?: string } = {}): Promise<FakeKms> {
  const region = options.region ?? "eu-west-1";
  const account = options.account ?? "111122223333";
  const keys = new Map<string, KeyRecord>();
  const aliases = new Map<string, string>();
  const callers = new Map<string, { secret: string; actions: Set<string>; keys: Set<string> }>();
  const calls: FakeKms["calls"] = [];

  const error = (status: number, type: string, message: string): FakeResponse => ({
    status,
    headers: { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() },
    json: { __type: type, message },
  });
  const ok = (body: unknown): FakeResponse => ({
    status: 200,
    headers: { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() },
    json: body,
  });

  function findKey(keyId: unknown, requestRegion: string): KeyRecord | FakeResponse {
    if (typeof keyId !== "string" || keyId.length === 0 || keyId.length > 2048)
      return error(400, "ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null");
    const arn = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):(key|alias)\/(.+)$/.exec(keyId);
    if (arn && (arn[1] !== requestRegion || arn[2] !== account))
      return error(400, "NotFoundException", `${arn[3] === "key" ? "Key" : "Alias"} '${keyId}' does not exist`);
    if ((arn && arn[3] === "alias") || keyId.startsWith("alias/")) {
      const name = arn ? `alias/${arn[4]}` : keyId;
      const id = region === requestRegion ? aliases.get(name) : undefined;
      return id ? keys.get(id)! : error(400, "NotFoundException", `Alias 'arn:aws:kms:${requestRegion}:${account}:${name}' is not found.`);
    }
    const id = arn ? arn[4]! : keyId;
    if (!/^(mrk-)?[0-9a-f-]{32,36}$/.test(id)) return error(400, "NotFoundException", `Invalid keyId '${keyId}'`);
    const key = region === requestRegion ? keys.get(id) : undefined;
    return key ?? error(400, "NotFoundException", `Key 'arn:aws:kms:${requestRegion}:${account}:key/${id}' does not exist`);
  }

  /** The SigV4 check: the caller, or KMS's answer to a request it does not accept. */
  function authenticate(req: FakeRequest): { accessKeyId: string; region: string } | FakeResponse {
    const header = req.headers.authorization;
    if (typeof header !== "string") return error(400, "MissingAuthenticationTokenException", "Missing Authentication Token");
    const match = AUTHORIZATION.exec(header);
    if (!match) return error(400, "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.");
    const [, accessKeyId, date, scopeRegion, signedHeaderList, signature] = match as unknown as [string, string, string, string, string, string];
    const signedHeaders = signedHeaderList.split(";");
    if (!signedHeaders.includes("host") || !signedHeaders.includes("x-amz-date"))
      return error(400, "IncompleteSignatureException", "Signed headers must include host and x-amz-date.");
    const amzDate = req.headers["x-amz-date"];
    if (typeof amzDate !== "string" || !/^\d{8}T\d{6}Z$/.test(amzDate) || amzDate.slice(0, 8) !== date)
      return error(400, "IncompleteSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP.");
    const signedAt = Date.parse(
      `${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`,
    );
    if (Math.abs(clock.now() - signedAt) > 5 * 60_000)
      return error(400, "InvalidSignatureException", "Signature expired: the request time is more than 5 minutes from the server's.");
    const caller = callers.get(accessKeyId);
    if (!caller) return error(400, "UnrecognizedClientException", "The security token included in the request is invalid.");
    // The canonical request as the caller must have signed it.
    const canonicalHeaders = signedHeaders
      .map((name) => {
        const value = req.headers[name];
        const text = Array.isArray(value) ? value.join(",") : (value ?? "");
        return `${name}:${String(text).trim().replace(/\s+/g, " ")}\n`;
      })
      .join("");
    const payloadHash = createHash("sha256").update(req.rawBody).digest("hex");
    const canonical = [req.method, req.path || "/", req.query.toString(), canonicalHeaders, signedHeaderList, payloadHash].join("\n");
    const scope = `${date}/${scopeRegion}/kms/aws4_request`;
    const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, createHash("sha256").update(canonical).digest("hex")].join("\n");
    let signingKey: Buffer = createHmac("sha256", `AWS4${caller.secret}`).update(date).digest();
    for (const part of [scopeRegion, "kms", "aws4_request"]) signingKey = createHmac("sha256", signingKey).update(part).digest();
    const expected = createHmac("sha256", signingKey).update(toSign).digest();
    if (!timingSafeEqual(expected, Buffer.from(signature, "hex")))
      return error(
        400,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
      );
    return { accessKeyId, region: scopeRegion };
  }

  function allowed(accessKeyId: string, action: string, key: KeyRecord): FakeResponse | undefined {
    const caller = callers.get(accessKeyId)!;
    if ((caller.actions.has(action) || caller.actions.has("kms:*")) && (caller.keys.has(key.arn) || caller.keys.has("*"))) return undefined;
    return error(
      400,
      "AccessDeniedException",
      `User: arn:aws:iam::${account}:user/${accessKeyId} is not authorized to perform: ${action} on resource: ${key.arn} because no identity-based policy allows the ${action} action`,
    );
  }

  function signWith(key: KeyRecord, body: Record<string, unknown>): FakeResponse {
    const algorithm = body.SigningAlgorithm;
    if (typeof algorithm !== "string" || !ALL_ALGORITHMS.includes(algorithm))
      return error(
        400,
        "ValidationException",
        `1 validation error detected: Value '${String(algorithm)}' at 'signingAlgorithm' failed to satisfy constraint: Member must satisfy enum value set: [${ALL_ALGORITHMS.join(", ")}]`,
      );
    const messageType = body.MessageType ?? "RAW";
    if (messageType !== "RAW" && messageType !== "DIGEST")
      return error(
        400,
        "ValidationException",
        `1 validation error detected: Value '${String(messageType)}' at 'messageType' failed to satisfy constraint: Member must satisfy enum value set: [DIGEST, RAW]`,
      );
    if (typeof body.Message !== "string")
      return error(400, "ValidationException", "1 validation error detected: Value null at 'message' failed to satisfy constraint: Member must not be null");
    const message = Buffer.from(body.Message, "base64");
    if (message.length < 1 || message.length > 4096)
      return error(
        400,
        "ValidationException",
        "1 validation error detected: Value at 'message' failed to satisfy constraint: Member must have length less than or equal to 4096",
      );
    if (key.keyUsage !== "SIGN_VERIFY" || !key.enabled)
      return key.enabled
        ? error(400, "InvalidKeyUsageException", `You cannot perform this operation on a ${key.keyUsage} key. Use a SIGN_VERIFY key.`)
        : error(400, "DisabledException", `${key.arn} is disabled.`);
    if (!RSA_ALGORITHMS.includes(algorithm))
      return error(400, "InvalidKeyUsageException", `Algorithm ${algorithm} is incompatible with key spec ${key.keySpec}.`);
    const hash = `sha${algorithm.slice(-3)}`;
    const pss = algorithm.startsWith("RSASSA_PSS");
    let signature: Buffer;
    if (messageType === "RAW") {
      signature = sign(
        hash,
        message,
        pss ? { key: key.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: DIGEST_BYTES[hash]! } : key.privateKey,
      );
    } else {
      if (message.length !== DIGEST_BYTES[hash]) return error(400, "ValidationException", `Digest is invalid length for algorithm ${algorithm}.`);
      if (pss) return error(400, "ValidationException", "This fake signs DIGEST messages with the RSASSA_PKCS1_V1_5 algorithms only.");
      signature = privateEncrypt({ key: key.privateKey, padding: constants.RSA_PKCS1_PADDING }, Buffer.concat([DIGEST_INFO[hash]!, message]));
    }
    return ok({ KeyId: key.arn, Signature: signature.toString("base64"), SigningAlgorithm: algorithm });
  }

  async function handle(req: FakeRequest): Promise<FakeResponse> {
    if (req.method !== "POST" || req.path !== "/") return error(404, "UnknownOperationException", "");
    const target = req.headers["x-amz-target"];
    const action = typeof target === "string" && target.startsWith("TrentService.") ? target.slice("TrentService.".length) : undefined;
    const contentType = String(req.headers["content-type"] ?? "")
      .split(";")[0]!
      .trim();
    if (contentType !== "application/x-amz-json-1.1")
      return error(400, "SerializationException", "Unexpected content type; expected application/x-amz-json-1.1");
    const who = authenticate(req);
    if ("status" in who) return who;
    let body: Record<string, unknown>;
    try {
      const parsed = JSON.parse(req.rawBody.toString("utf8") || "{}") as unknown;
      if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
      body = parsed as Record<string, unknown>;
    } catch {
      return error(400, "SerializationException", "Start of structure or map found where not expected.");
    }
    if (action !== "Sign" && action !== "GetPublicKey") return error(400, "UnknownOperationException", "");
    const key = findKey(body.KeyId, who.region);
    if ("status" in key) return key;
    const denied = allowed(who.accessKeyId, `kms:${action}`, key);
    if (denied) return denied;
    if (action === "GetPublicKey") {
      if (!key.enabled) return error(400, "DisabledException", `${key.arn} is disabled.`);
      return ok({
        KeyId: key.arn,
        PublicKey: createPublicKey(key.privateKey).export({ type: "spki", format: "der" }).toString("base64"),
        CustomerMasterKeySpec: key.keySpec,
        KeySpec: key.keySpec,
        KeyUsage: key.keyUsage,
        ...(key.keyUsage === "SIGN_VERIFY"
          ? { SigningAlgorithms: key.keySpec.startsWith("RSA") ? RSA_ALGORITHMS : ["ECDSA_SHA_256"] }
          : { EncryptionAlgorithms: ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"] }),
      });
    }
    return signWith(key, body);
  }

  const clock = createClock();
  const server = await startFakeServer({
    clock,
    handle: async (req) => {
      const response = await handle(req);
      const target = String(req.headers["x-amz-target"] ?? "");
      const type = (response.json as { __type?: string } | undefined)?.__type;
      calls.push({ action: target.replace(/^TrentService\./, ""), status: response.status, ...(type ? { error: type } : {}) });
      return response;
    },
  });

  return {
    ...server,
    region,
    account,
    calls,
    addKey({ privateKey, alias, keyUsage = "SIGN_VERIFY", enabled = true }) {
      const key = typeof privateKey === "string" ? createPrivateKey(privateKey) : privateKey;
      const keyId = randomUUID();
      const bits = key.asymmetricKeyDetails?.modulusLength;
      const keySpec = key.asymmetricKeyType === "rsa" ? `RSA_${bits}` : key.asymmetricKeyType === "ec" ? "ECC_NIST_P256" : "UNKNOWN";
      const record: KeyRecord = { keyId, arn: `arn:aws:kms:${region}:${account}:key/${keyId}`, privateKey: key, keyUsage, enabled, keySpec };
      if (alias) {
        record.alias = alias.startsWith("alias/") ? alias : `alias/${alias}`;
        aliases.set(record.alias, keyId);
      }
      keys.set(keyId, record);
      return { keyId, arn: record.arn, alias: record.alias };
    },
    addCredentials({ actions = ["kms:Sign", "kms:GetPublicKey"], keys: allowedKeys = ["*"] } = {}) {
      const accessKeyId = `AKIA${randomUUID().replace(/-/g, "").slice(0, 16).toUpperCase()}`;
      const secretAccessKey = createHash("sha256").update(randomUUID()).digest("base64").slice(0, 40);
      callers.set(accessKeyId, { secret: secretAccessKey, actions: new Set(actions), keys: new Set(allowedKeys) });
      return { accessKeyId, secretAccessKey };
    },
  };
}
