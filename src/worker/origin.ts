/**
 * Which browser origins may call the relay at all (docs/auth.md): the relay's own, and those in
 * ALLOWED_ORIGINS. Checked on every request that carries an `Origin`, before any route: CORS alone
 * does not stop a `text/plain` POST or an EventSource from a foreign page (no preflight), nor a
 * WebSocket. Clients that are not browsers send no Origin and are not affected.
 *
 * The relay's own origin is the request's, but only under a host it is really served as: the
 * request's host comes from its Host header, which a DNS-rebinding page sets to its own name.
 * Loopback names (local development) and `*.workers.dev` (Cloudflare routes only the Worker's own
 * name there) are; a custom domain is listed in ALLOWED_ORIGINS. A browser's request without an
 * Origin (a same-origin GET) is held to the same host rule.
 */
import { normaliseOrigin } from "../settings";

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether the origins of `allowed` (already normalised) include `origin`. */
export function listed(origin: string, allowed: readonly string[]): boolean {
  return allowed.includes("*") || allowed.includes(origin);
}

/** Whether the relay is really served under `url`'s host (not a name a rebinding page gave it). */
function servedHost(url: URL, allowed: readonly string[]): boolean {
  if (LOOPBACK.has(url.hostname) || url.hostname.endsWith(".workers.dev")) return true;
  return allowed.some((a) => a !== "*" && new URL(a).host === url.host);
}

/**
 * Whether a request may go on: `origin` is its Origin header, `fetchSite` its Sec-Fetch-Site (sent
 * by browsers on every request, also same-origin GETs, which carry no Origin: an EventSource or a
 * history read from a page on a rebinding domain has only this to tell it from curl).
 */
export function originAllowed(
  origin: string | undefined,
  fetchSite: string | undefined,
  requestUrl: string,
  allowed: readonly string[],
): boolean {
  if (origin === undefined && fetchSite === undefined) return true;
  const own = new URL(requestUrl);
  if (origin === undefined) return servedHost(own, allowed);
  const o = normaliseOrigin(origin);
  if (o === undefined) return false;
  if (listed(o, allowed)) return true;
  return o === own.origin && servedHost(own, allowed);
}
