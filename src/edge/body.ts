/**
 * Request bodies, read or refused so that the connection they came on stays usable. The rule,
 * from what was measured under `wrangler dev` (docs/runtime-notes.md, "Request bodies and
 * keep-alive"): read every body to its end before answering, bounded in bytes and in time; only
 * past those bounds cancel it (the one client that sent too much, or too slowly, loses its
 * connection); never answer while a reader holds a body half read. A byte left unread breaks a
 * pooled keep-alive connection, and the next request of ANY client on it gets a 503.
 */
import { RelayError } from "../errors";
import { joinBytes } from "./byte-stream";

/**
 * Bytes of a refused body still read (and dropped) so its connection stays reusable, whatever
 * limit the route has. Past it the body is cancelled: left with less than ~4-5 MB unread, that
 * breaks the next request of another client under `wrangler dev`, so a cap of a few MiB (the old
 * 4 MiB one) is where the harm is most likely; 32 MiB drains in about a second.
 */
export const DRAIN_MAX_BYTES = 32 * 1024 * 1024;

/** How long {@link discardBody} reads a body it drops, unless told otherwise. */
export const DISCARD_TIMEOUT_MS = 10_000;

export interface ReadBodyOptions {
  /** Largest body accepted, in bytes; a larger one is `too_large`. */
  maxBytes: number;
  /**
   * Time for the whole body to arrive, from the call, in ms; a slower one is `deadline_exceeded`.
   * A total, not an idle, timeout: a body that trickles a byte every few seconds never idles long.
   */
  timeoutMs: number;
  /** Bytes of a too-large body still read to keep its connection; default {@link DRAIN_MAX_BYTES}. */
  drainMaxBytes?: number;
}

export interface DiscardBodyOptions {
  /** Time allowed to read the body to its end, in ms; default {@link DISCARD_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** Bytes read at most before giving up; default {@link DRAIN_MAX_BYTES}. */
  drainMaxBytes?: number;
}

/** How reading a body ended: at its end, at the deadline, at the byte cap, or with an error (client gone). */
type Ending = "end" | "timeout" | "cap" | "error";

/** The declared length of a body, or undefined when it has none (chunked) or a malformed one. */
function declaredLength(req: Request): number | undefined {
  const v = req.headers.get("Content-Length");
  if (v === null || !/^\d+$/.test(v.trim())) return undefined;
  return Number(v);
}

/**
 * Reads `reader` until the end, the deadline, or `onChunk` returns false (the cap). A read still
 * pending at the deadline is left to {@link finish}, whose cancel settles it.
 */
async function pump(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  deadline: number,
  onChunk: (chunk: Uint8Array) => boolean,
): Promise<Ending> {
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) return "timeout";
    let timer: ReturnType<typeof setTimeout> | null = null;
    const expired = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), left);
    });
    let r: ReadableStreamReadResult<Uint8Array> | "timeout";
    try {
      r = await Promise.race([reader.read(), expired]);
    } catch {
      return "error";
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
    if (r === "timeout") return "timeout";
    if (r.done) return "end";
    if (!onChunk(r.value)) return "cap";
  }
}

/**
 * Leaves the body in the state that was measured to be the least harm: read to its end, the lock
 * released; otherwise cancelled (which also settles a read still pending) and the lock released,
 * so that nothing later (wrangler's drain middleware, the router's own) finds it locked.
 */
async function finish(reader: ReadableStreamDefaultReader<Uint8Array>, ending: Ending, why: string): Promise<void> {
  if (ending !== "end") await reader.cancel(why).catch(() => {});
  try {
    reader.releaseLock();
  } catch {
    // Already released, or the stream is gone: nothing left to hold.
  }
}

/**
 * Reads `req`'s body, at most `maxBytes` of it, within `timeoutMs`.
 *
 * On refusal it first does what keeps the connection usable: a body over `maxBytes` is still read to its end and dropped, up to `drainMaxBytes` and
 * within the same deadline, so the client gets its 413 on a connection it can reuse; only a body
 * declared or found larger than `drainMaxBytes`, or still arriving at the deadline, is cancelled
 * (that client loses its connection; under `wrangler dev` another client's next request can still
 * get the proxy's 503 if a few MB or less were left, or if a trickling client ends its body right
 * after the answer). Either way the lock is released before it throws.
 *
 * @returns the body; an empty array when there is none.
 * @throws RelayError `too_large` (413) for a body over `maxBytes`; `deadline_exceeded` (408) for
 *   one not all there after `timeoutMs`; `invalid_argument` if the body broke off (the client went
 *   away, or sent less than its Content-Length); `internal` if the body was already read or locked
 *   (a bug in the caller).
 */
export async function readBody(req: Request, o: ReadBodyOptions): Promise<Uint8Array> {
  const body = req.body;
  if (!body) return new Uint8Array(0);
  if (body.locked || req.bodyUsed) throw new RelayError("internal", "request body already read");
  const drainMax = Math.max(o.drainMaxBytes ?? DRAIN_MAX_BYTES, o.maxBytes);
  const tooLarge = () => new RelayError("too_large", `body larger than ${o.maxBytes} bytes`);
  const declared = declaredLength(req);
  if (declared !== undefined && declared <= o.maxBytes) return readDeclared(req, o.timeoutMs);
  const reader = body.getReader();
  if (declared !== undefined && declared > drainMax) {
    // Not worth reading. Cancelling while the client still sends closes its connection (under
    // `wrangler dev` it may see a 503 or a reset instead of the 413), but harms no other client.
    await finish(reader, "cap", "body too large");
    throw tooLarge();
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const ending = await pump(reader, Date.now() + o.timeoutMs, (chunk) => {
    size += chunk.byteLength;
    if (size <= o.maxBytes) chunks.push(chunk);
    else chunks.length = 0; // over the limit: read on to the end, keep nothing
    return size <= drainMax;
  });
  await finish(reader, ending, ending === "timeout" ? "body too slow" : "body refused");
  if (size > o.maxBytes) throw tooLarge();
  if (ending === "timeout") {
    throw new RelayError(
      "deadline_exceeded",
      `request body did not arrive within ${o.timeoutMs / 1000} s (${size} bytes came)`,
    );
  }
  if (ending === "error") throw new RelayError("invalid_argument", "request body broken off before its end");
  return chunks.length === 0 ? new Uint8Array(0) : joinBytes(chunks);
}

/**
 * A body whose declared length is within bounds, read by the runtime in one piece: the HTTP
 * framing ends it at that length, so no byte count is needed, and a JavaScript read loop (a read,
 * a timer and a race per chunk, then the lock) was measured to cost ~0.6 ms of a publish's ~3.8 ms
 * of server CPU under `wrangler dev`. A body still arriving at the deadline is refused like any
 * other (408); its read ends with the request, and only that client's connection is lost
 * (test/e2e/keep-alive.test.ts tries it with a declared length).
 */
async function readDeclared(req: Request, timeoutMs: number): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  let r: ArrayBuffer | "timeout";
  try {
    r = await Promise.race([req.arrayBuffer(), expired]);
  } catch {
    throw new RelayError("invalid_argument", "request body broken off before its end");
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
  if (r === "timeout") {
    throw new RelayError("deadline_exceeded", `request body did not arrive within ${timeoutMs / 1000} s`);
  }
  return new Uint8Array(r);
}

/**
 * Drops `req`'s body, for a route that answers without it (a refusal, a GET that came with a
 * body): reads it to its end and releases the lock, which is what keeps the keep-alive connection
 * (and, under `wrangler dev`, the proxy's pooled connection other clients share) usable. A body
 * declared larger than `drainMaxBytes`, found larger, or not over within `timeoutMs`, is cancelled
 * instead (only that client's connection is lost). Call it before returning the response: reading
 * the rest after answering was measured not to help.
 *
 * A body already locked by a reader someone else holds (a library's) cannot be drained from here:
 * it is left as it is. Never throws; resolves at once when there is no body.
 *
 * @returns true when the body is gone cleanly (read to its end, or there was none); false when it
 *   was cancelled or is locked. On false, prefer answering 408 (or 413) to a 400: a 400 sent while
 *   the body still arrives reached the client as the dev proxy's 503.
 */
export async function discardBody(req: Request, o: DiscardBodyOptions = {}): Promise<boolean> {
  const body = req.body;
  if (!body) return true;
  // Locked: someone else's reader. (A body already read in part but released can still be drained.)
  if (body.locked) return false;
  const drainMax = o.drainMaxBytes ?? DRAIN_MAX_BYTES;
  const declared = declaredLength(req);
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  try {
    reader = body.getReader();
  } catch {
    return false;
  }
  if (declared !== undefined && declared > drainMax) {
    await finish(reader, "cap", "body dropped");
    return false;
  }
  let size = 0;
  const ending = await pump(reader, Date.now() + (o.timeoutMs ?? DISCARD_TIMEOUT_MS), (chunk) => {
    size += chunk.byteLength;
    return size <= drainMax;
  });
  await finish(reader, ending, "body dropped");
  return ending === "end";
}
