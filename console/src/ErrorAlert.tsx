import type { CombinedError } from "urql";
import { describeError } from "./errors.ts";
import type { ApiError } from "./session.ts";

/** An error in words with its code, announced to assistive technology; nothing when there is none. */
export function ErrorAlert({ error }: { error?: CombinedError | ApiError | Error | string | null }) {
  if (!error) return null;
  return (
    <p role="alert" className="error">
      {typeof error === "string" ? error : describeError(error)}
    </p>
  );
}
