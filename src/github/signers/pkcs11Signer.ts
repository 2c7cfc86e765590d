import { createPublicKey, type KeyObject } from "node:crypto";
import { type JwtSigner, SignerError } from "./jwtSigner.ts";

// A GitHub App key on a PKCS#11 token (an HSM, a cloud HSM's PKCS#11 library, SoftHSM2 in tests),
// through the optional package pkcs11js (N-API: one build works on every Node.js version). It is
// imported only when an app uses this signer; where it could not be built (no compiler), the check at
// start says so.
//
// One session per signer, opened and logged in on first use and kept: PKCS#11 sessions are not safe
// for concurrent operations (C_SignInit and C_Sign are one operation in the session's state), so the
// signer's calls run one after another on a queue. C_Sign itself runs on libuv's thread pool
// (C_SignAsync), off the event loop. A session the token dropped (CKR_SESSION_HANDLE_INVALID,
// CKR_SESSION_CLOSED, a removed token, logged out) is opened again, the slot found again by the token's
// label, and the call tried once more. The module is loaded and C_Initialize'd once per process and
// library (apps on one HSM share it), and C_Finalize'd when its last signer closes.
//
// The PIN is kept (a re-opened session logs in again) but never written anywhere: no error, log line
// or `where` carries it.

export interface Pkcs11Settings {
  /** Path of the PKCS#11 library (/usr/lib/softhsm/libsofthsm2.so). */
  module: string;
  /** The token, by label (preferred: slot numbers change when tokens are added) or by slot id. */
  tokenLabel?: string;
  slot?: number;
  pin: string;
  /** The private key, by CKA_LABEL and/or CKA_ID (hex). */
  keyLabel?: string;
  keyId?: string;
}

// The part of pkcs11js used here (typed locally so that Keyplane type-checks where the optional
// package could not be installed).
type Handle = Buffer;
interface Pkcs11Lib {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetTokenInfo(slot: Handle): { label: string };
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Array<{ type: number; value?: number | boolean | string | Buffer }>): void;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Array<{ type: number }>): Array<{ type: number; value: Buffer }>;
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_SignAsync(session: Handle, inData: Buffer, outData: Buffer): Promise<Buffer>;
}
interface Pkcs11Js {
  PKCS11: new () => Pkcs11Lib;
  [constant: string]: unknown;
}

let pkcs11js: Promise<Pkcs11Js> | undefined;

/** pkcs11js, imported once; a clear SignerError where it is not installed. */
function loadPkcs11js(): Promise<Pkcs11Js> {
  pkcs11js ??= import("pkcs11js").then(
    (imported) => ((imported as { default?: Pkcs11Js }).default ?? imported) as Pkcs11Js,
    (error: unknown) => {
      pkcs11js = undefined;
      const code = (error as { code?: string }).code;
      throw new SignerError(
        code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND"
          ? "the pkcs11 signer needs the optional package pkcs11js, which is not installed here (npm install pkcs11js: it builds with node-gyp, a C++ compiler and python3)"
          : `the optional package pkcs11js could not be loaded (${error instanceof Error ? error.message.split("\n")[0] : "error"})`,
      );
    },
  );
  return pkcs11js;
}

const constant = (p: Pkcs11Js, name: string): number => {
  const value = p[name];
  if (typeof value !== "number") throw new SignerError(`pkcs11js has no ${name}`);
  return value;
};

/** The PKCS#11 return value of an error from pkcs11js, by name (CKR_PIN_INCORRECT), or undefined. */
function ckr(error: unknown): string | undefined {
  const message = error instanceof Error ? error.message : "";
  return /^(CKR_[A-Z_]+)/.exec(message)?.[1];
}

// ---- one loaded library per path, shared by the signers that use it ----

interface LoadedModule {
  p: Pkcs11Js;
  lib: Pkcs11Lib;
  users: number;
}
const loaded = new Map<string, Promise<LoadedModule>>();

function acquireModule(path: string): Promise<LoadedModule> {
  let entry = loaded.get(path);
  if (!entry) {
    entry = (async () => {
      const p = await loadPkcs11js();
      const lib = new p.PKCS11();
      try {
        lib.load(path);
      } catch (error) {
        throw new SignerError(`the PKCS#11 library ${path} could not be loaded (${error instanceof Error ? error.message.split("\n")[0] : "error"})`);
      }
      try {
        lib.C_Initialize({ flags: constant(p, "CKF_OS_LOCKING_OK") });
      } catch (error) {
        // Another user in this process (not a signer of ours) initialized it first: it stays usable.
        if (ckr(error) !== "CKR_CRYPTOKI_ALREADY_INITIALIZED") {
          lib.close();
          throw new SignerError(`the PKCS#11 library ${path} failed to initialize (${ckr(error) ?? "error"})`);
        }
      }
      return { p, lib, users: 0 };
    })();
    loaded.set(path, entry);
    entry.catch(() => loaded.delete(path));
  }
  return entry.then((module) => {
    module.users++;
    return module;
  });
}

function releaseModule(path: string, module: LoadedModule): void {
  module.users--;
  if (module.users > 0 || loaded.get(path) === undefined) return;
  loaded.delete(path);
  try {
    module.lib.C_Finalize();
  } catch {
    // Already finalized or the token is gone: nothing more to release.
  }
  try {
    module.lib.close();
  } catch {
    // As above.
  }
}

// Session-level problems that a new session may cure.
const REOPEN = new Set([
  "CKR_SESSION_HANDLE_INVALID",
  "CKR_SESSION_CLOSED",
  "CKR_DEVICE_REMOVED",
  "CKR_TOKEN_NOT_PRESENT",
  "CKR_USER_NOT_LOGGED_IN",
  "CKR_OBJECT_HANDLE_INVALID",
  "CKR_KEY_HANDLE_INVALID",
  "CKR_DEVICE_ERROR",
  "CKR_SLOT_ID_INVALID",
]);
const TRANSIENT = new Set(["CKR_DEVICE_REMOVED", "CKR_TOKEN_NOT_PRESENT", "CKR_DEVICE_ERROR", "CKR_DEVICE_MEMORY", "CKR_SESSION_COUNT", "CKR_FUNCTION_FAILED"]);

interface Session {
  handle: Handle;
  key: Handle;
  /** Signature length: the modulus in bytes. */
  size: number;
  publicKey: KeyObject;
}

export function pkcs11Signer(settings: Pkcs11Settings): JwtSigner {
  const token = settings.tokenLabel !== undefined ? `token "${settings.tokenLabel}"` : `slot ${settings.slot}`;
  const key = [settings.keyLabel !== undefined ? `label "${settings.keyLabel}"` : "", settings.keyId !== undefined ? `id ${settings.keyId}` : ""]
    .filter(Boolean)
    .join(", ");
  const where = `pkcs11 ${token} key ${key}`;
  let module: LoadedModule | undefined;
  let session: Session | undefined;
  let closed = false;
  // Every call on the session, one after another.
  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  const fail = (what: string, error: unknown): SignerError => {
    if (error instanceof SignerError) return error;
    const code = ckr(error);
    if (code === "CKR_PIN_INCORRECT") return new SignerError(`${where}: the token refused the PIN (CKR_PIN_INCORRECT)`);
    if (code === "CKR_PIN_LOCKED") return new SignerError(`${where}: the token's user PIN is locked (CKR_PIN_LOCKED)`);
    return new SignerError(`${where}: ${what} failed (${code ?? (error instanceof Error ? error.name : "error")})`, code !== undefined && TRANSIENT.has(code));
  };

  function findSlot(m: LoadedModule): Handle {
    const slots = m.lib.C_GetSlotList(true);
    if (settings.tokenLabel === undefined) {
      const slot = slots.find((s) => s.readUIntLE(0, Math.min(6, s.length)) === settings.slot);
      if (!slot) throw new SignerError(`${where}: no token is present in slot ${settings.slot}`, true);
      return slot;
    }
    const matching = slots.filter((s) => m.lib.C_GetTokenInfo(s).label.trimEnd() === settings.tokenLabel);
    if (matching.length === 0) throw new SignerError(`${where}: no token labelled "${settings.tokenLabel}" is present`, true);
    if (matching.length > 1) throw new SignerError(`${where}: ${matching.length} tokens are labelled "${settings.tokenLabel}"; name the slot instead`);
    return matching[0]!;
  }

  function findObject(m: LoadedModule, handle: Handle, objectClass: number): Handle[] {
    const template: Array<{ type: number; value: number | string | Buffer }> = [{ type: constant(m.p, "CKA_CLASS"), value: objectClass }];
    if (settings.keyLabel !== undefined) template.push({ type: constant(m.p, "CKA_LABEL"), value: settings.keyLabel });
    if (settings.keyId !== undefined) template.push({ type: constant(m.p, "CKA_ID"), value: Buffer.from(settings.keyId, "hex") });
    m.lib.C_FindObjectsInit(handle, template);
    try {
      return m.lib.C_FindObjects(handle, 2);
    } finally {
      m.lib.C_FindObjectsFinal(handle);
    }
  }

  /** The RSA public key of `object`, when the token shows its modulus and exponent. */
  function rsaPublicKey(m: LoadedModule, handle: Handle, object: Handle): KeyObject | undefined {
    try {
      const [keyType, modulus, exponent] = m.lib.C_GetAttributeValue(handle, object, [
        { type: constant(m.p, "CKA_KEY_TYPE") },
        { type: constant(m.p, "CKA_MODULUS") },
        { type: constant(m.p, "CKA_PUBLIC_EXPONENT") },
      ]);
      if (!keyType || keyType.value.readUIntLE(0, Math.min(6, keyType.value.length)) !== constant(m.p, "CKK_RSA"))
        throw new SignerError(`${where} is not an RSA key; GitHub Apps sign with RS256`);
      if (!modulus?.value.length || !exponent?.value.length) return undefined;
      return createPublicKey({ key: { kty: "RSA", n: modulus.value.toString("base64url"), e: exponent.value.toString("base64url") }, format: "jwk" });
    } catch (error) {
      if (error instanceof SignerError) throw error;
      return undefined;
    }
  }

  async function open(): Promise<Session> {
    if (closed) throw new SignerError(`${where}: the signer is closed`);
    module ??= await acquireModule(settings.module);
    const m = module;
    const handle = (() => {
      try {
        return m.lib.C_OpenSession(findSlot(m), constant(m.p, "CKF_SERIAL_SESSION"));
      } catch (error) {
        throw fail("opening a session", error);
      }
    })();
    try {
      try {
        m.lib.C_Login(handle, constant(m.p, "CKU_USER"), settings.pin);
      } catch (error) {
        // Logins are per application and token: another session of this process is logged in already.
        if (ckr(error) !== "CKR_USER_ALREADY_LOGGED_IN") throw fail("logging in", error);
      }
      const keys = findObject(m, handle, constant(m.p, "CKO_PRIVATE_KEY"));
      if (keys.length === 0) throw new SignerError(`${where}: no such private key on the token`);
      if (keys.length > 1) throw new SignerError(`${where}: more than one private key matches; give the key's id (CKA_ID) too`);
      const privateKey = keys[0]!;
      const [canSign] = m.lib.C_GetAttributeValue(handle, privateKey, [{ type: constant(m.p, "CKA_SIGN") }]);
      if (canSign?.value.length && canSign.value[0] === 0) throw new SignerError(`${where}: the key may not sign (CKA_SIGN is false)`);
      // The modulus and exponent from the private key object, else from its public key object.
      let publicKey = rsaPublicKey(m, handle, privateKey);
      if (!publicKey) {
        const [publicObject] = findObject(m, handle, constant(m.p, "CKO_PUBLIC_KEY"));
        publicKey = publicObject ? rsaPublicKey(m, handle, publicObject) : undefined;
      }
      if (!publicKey) throw new SignerError(`${where}: the token shows neither the key's modulus nor a public key object with the same label or id`);
      const size = Math.ceil((publicKey.asymmetricKeyDetails?.modulusLength ?? 2048) / 8);
      return { handle, key: privateKey, size, publicKey };
    } catch (error) {
      try {
        m.lib.C_CloseSession(handle);
      } catch {
        // The session is useless either way.
      }
      throw fail("finding the key", error);
    }
  }

  function drop(): void {
    if (!session || !module) return;
    const { handle } = session;
    session = undefined;
    try {
      module.lib.C_CloseSession(handle);
    } catch {
      // Already invalid: that is why it is dropped.
    }
  }

  /** `work` on the session, opening it first; once more on a new session when the token dropped it. */
  const withSession = <T>(what: string, work: (m: LoadedModule, s: Session) => Promise<T>): Promise<T> =>
    serial(async () => {
      for (let attempt = 1; ; attempt++) {
        session ??= await open();
        try {
          return await work(module!, session);
        } catch (error) {
          const code = ckr(error);
          if (attempt === 1 && code !== undefined && REOPEN.has(code)) {
            drop();
            continue;
          }
          throw fail(what, error);
        }
      }
    });

  return {
    kind: "pkcs11",
    where,
    sign: (data) =>
      withSession("signing", async (m, s) => {
        m.lib.C_SignInit(s.handle, { mechanism: constant(m.p, "CKM_SHA256_RSA_PKCS") }, s.key);
        return new Uint8Array(await m.lib.C_SignAsync(s.handle, Buffer.from(data), Buffer.alloc(s.size)));
      }),
    publicKey: () => withSession("reading the public key", async (_m, s) => s.publicKey),
    close: () =>
      serial(async () => {
        if (closed) return;
        closed = true;
        drop();
        if (module) releaseModule(settings.module, module);
        module = undefined;
      }),
  };
}
