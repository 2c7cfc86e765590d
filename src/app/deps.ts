import type { TokenMinter } from "../auth/tokenMinter.ts";
import type { TokenVerifier } from "../auth/verifyToken.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../logger.ts";
import type { Db } from "../store/db.ts";
import type { SecurityRecorder } from "./recordSecurityEvent.ts";

/** Everything use cases may reach. Each use case names the part it needs with Pick<>. */
export interface AppDeps {
  db: Db;
  config: Config;
  logger: Logger;
  minter: TokenMinter;
  verifier: TokenVerifier;
  security: SecurityRecorder;
  now: () => Date;
}
