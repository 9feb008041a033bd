/**
 * A streamed response body that the Worker writes bytes into: what SSE and Connect streams share.
 * It is the runtime's own byte stream (workerd's IdentityTransformStream), not a JavaScript
 * TransformStream: each write goes to the client's connection without passing through JavaScript
 * stream queues, and resolves once the connection has taken it, which is what the edge
 * subscription's flow control waits for.
 */
export interface ByteStream {
  /** The response body. */
  readable: ReadableStream<Uint8Array>;
  /** Writes bytes; resolves once the client's connection has taken them, never rejects (a closed stream is `closed`). */
  write(bytes: Uint8Array): Promise<void>;
  /** Ends the body. */
  close(): Promise<void>;
  /** Fires once the client has gone (a write failed, or the body was cancelled). */
  readonly gone: AbortSignal;
}

export function byteStream(): ByteStream {
  const { readable, writable } = new IdentityTransformStream();
  const writer = writable.getWriter();
  const gone = new AbortController();
  let closed = false;
  const fail = () => {
    closed = true;
    gone.abort();
  };
  writer.closed.catch(fail);
  return {
    readable,
    write: (bytes) => (closed ? Promise.resolve() : writer.write(bytes).catch(fail)),
    close: async () => {
      if (closed) return;
      closed = true;
      await writer.close().catch(() => {});
    },
    gone: gone.signal,
  };
}

/** Byte arrays as one (the one array itself when there is only one). */
export function joinBytes(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
