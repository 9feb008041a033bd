/**
 * Which browser origins may open a WebSocket. CORS does not apply to WebSocket upgrades, so a page
 * on any site could otherwise open one with its visitor's cookies (cross-site WebSocket hijacking):
 * the Origin header is checked against ALLOWED_ORIGINS, the same list CORS uses (../shared/DESIGN.md,
 * Security). Clients that are not browsers send no Origin and are not affected.
 */
export function originAllowed(origin: string | undefined, requestUrl: string, allowed: string[]): boolean {
  if (!origin) return true;
  if (origin === new URL(requestUrl).origin) return true;
  return allowed.includes("*") || allowed.includes(origin);
}
