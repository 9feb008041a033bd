/**
 * Which browser origins may call the relay at all (docs/auth.md): the relay's own, and those in
 * ALLOWED_ORIGINS. Checked on every request that carries an `Origin`, before any route: CORS alone
 * does not stop a `text/plain` POST or an EventSource from a foreign page (no preflight), nor a
 * WebSocket. Clients that are not browsers send no Origin and are not affected.
 *
 * The relay's own origin is the request's, but only under a host it is really served as: the
 * request's host comes from its Host header, which a DNS-rebinding page sets to its own name.
 * Loopback names (local development) and `*.workers.dev` (Cloudflare routes only the Worker's own
 * name there) are; a custom domain is listed in ALLOWED_ORIGINS.
 */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** An origin in its serialised form (lower case, default port dropped); undefined when not one. */
export function normalise(origin: string): string | undefined {
  try {
    const o = new URL(origin).origin;
    return o === "null" ? undefined : o;
  } catch {
    return undefined;
  }
}

/** Whether the origins of `allowed` (already normalised) include `origin`. */
export function listed(origin: string, allowed: readonly string[]): boolean {
  return allowed.includes("*") || allowed.includes(origin);
}

export function originAllowed(origin: string | undefined, requestUrl: string, allowed: readonly string[]): boolean {
  if (origin === undefined) return true;
  const o = normalise(origin);
  if (o === undefined) return false;
  if (listed(o, allowed)) return true;
  const own = new URL(requestUrl);
  return o === own.origin && (LOOPBACK.has(own.hostname) || own.hostname.endsWith(".workers.dev"));
}
