/** The one error type the client rejects with. */

/** An error with a code: one of the relay's (`too_large`, `permission_denied`, ...) or the client's own. */
export class RelayError extends Error {
  constructor(
    /** The relay's error code, or "network", "timeout", "closed" (the client was closed), "queue_full". */
    readonly code: string,
    message: string,
    /** Whether the same request may succeed later (the client retries these by itself). */
    readonly retryable = false,
  ) {
    super(message);
    this.name = "RelayError";
  }
}
