/** Request bodies read with a bound: a body over the limit is refused whatever its Content-Length says. */
import { RelayError } from "../errors";

/**
 * How much of an oversized body is still read (and dropped) before answering. Answering while the
 * client is still sending breaks its keep-alive connection for the next request (seen under
 * `wrangler dev` with connect-node: the next call got a 503); past this, the client's connection
 * is not worth the bytes.
 */
const DRAIN_BYTES = 4 * 1024 * 1024;

/** Reads at most `max` bytes of `req`'s body, or throws a `too_large` RelayError. */
export async function readBodyBytes(req: Request, max: number): Promise<Uint8Array> {
  const tooLarge = () => new RelayError("too_large", `body larger than ${max} bytes`);
  const declared = Number(req.headers.get("Content-Length") ?? 0);
  if (declared > DRAIN_BYTES) throw tooLarge();
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > DRAIN_BYTES) throw tooLarge();
    if (size <= max) chunks.push(chunk);
  }
  if (size > max) throw tooLarge();
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}
