/** Query and header values the routes accept, checked once, with clear errors. */
import { RelayError } from "../errors";

/** A log offset: plain digits (as in the SSE `id:` line), at most 2^53-1. Absent → undefined. */
export function parseOffset(value: string | undefined | null, name: string): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n)) throw new RelayError("invalid_argument", `${name} must be a non-negative integer`);
  return n;
}

/** An optional user name from a query; the room checks its form. */
export function parseUser(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (value.length > 64 || /\p{Cc}/u.test(value)) {
    throw new RelayError("invalid_argument", "user must be 1-64 characters, no control characters");
  }
  return value;
}

/** An optional epoch: what a `subscribed` event said. */
export function parseEpoch(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw new RelayError("invalid_argument", "epoch is malformed");
  return value;
}
