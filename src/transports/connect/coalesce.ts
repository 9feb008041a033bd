/**
 * Joins the chunks of a streamed Connect response that are ready together into one write. The
 * events of one room batch come out of Connect as one envelope each; written one by one they cost
 * the runtime a write each (and, under `wrangler dev`, an inspector report each: TOOLCHAIN.md). A
 * chunk waits for more only until the next macrotask (one timer per chunk written: a Worker may
 * have at most 10,000 active), so a lone event is not held back, and at most MAX_CHUNK bytes are
 * joined, so a long replay still streams.
 */
const TICK = Symbol("tick");
const MAX_CHUNK = 64 * 1024;
const tick = () => new Promise<typeof TICK>((resolve) => setTimeout(() => resolve(TICK), 0));

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

export function coalesceChunks(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const it = source[Symbol.asyncIterator]();
      // A read of the source still under way when the last chunk was handed on.
      let ahead: Promise<IteratorResult<Uint8Array>> | undefined;
      let ended = false;
      return {
        async next() {
          if (ended) return { done: true, value: undefined };
          const first = await (ahead ?? it.next());
          ahead = undefined;
          if (first.done) return first;
          const parts = [first.value];
          let size = first.value.byteLength;
          const soon = tick();
          while (size < MAX_CHUNK) {
            ahead = it.next();
            const r = await Promise.race([ahead, soon]);
            if (r === TICK) break;
            ahead = undefined;
            if (r.done) {
              ended = true;
              break;
            }
            parts.push(r.value);
            size += r.value.byteLength;
          }
          return { done: false, value: concat(parts) };
        },
        // Cancellation reaches the source as it would without this wrapper.
        return: async (value?: unknown) => (it.return ? it.return(value) : { done: true, value: undefined }),
        throw: async (e?: unknown) => {
          if (it.throw) return it.throw(e);
          throw e;
        },
      };
    },
  };
}
