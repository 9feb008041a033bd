/** Request bodies read with a bound: a body over the limit is refused whatever its Content-Length says. */
import { RelayError } from "../errors";

/** Reads at most `max` bytes of `req`'s body, or throws a `too_large` RelayError. */
export async function readBodyBytes(req: Request, max: number): Promise<Uint8Array> {
  const tooLarge = () => new RelayError("too_large", `body larger than ${max} bytes`);
  if (Number(req.headers.get("Content-Length") ?? 0) > max) throw tooLarge();
  if (!req.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of req.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) throw tooLarge();
    chunks.push(chunk);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return all;
}
