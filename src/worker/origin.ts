/**
 * Which browser origins may open a WebSocket: the relay's own, and those in ALLOWED_ORIGINS (the
 * same list CORS uses). Clients that are not browsers send no Origin and are not affected.
 */
export function originAllowed(origin: string | undefined, requestUrl: string, allowed: string[]): boolean {
  if (!origin) return true;
  if (origin === new URL(requestUrl).origin) return true;
  return allowed.includes("*") || allowed.includes(origin);
}
