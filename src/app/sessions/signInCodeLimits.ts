// How long a sign-in code may live: one place for the CLI's usage check (`keyplane console link
// --ttl`, which loads nothing heavy before it parses) and the code's own input schema (signInCode.ts).

export const SIGN_IN_CODE_MIN_TTL_SECONDS = 30;
export const SIGN_IN_CODE_DEFAULT_TTL_SECONDS = 300;
export const SIGN_IN_CODE_MAX_TTL_SECONDS = 900;
