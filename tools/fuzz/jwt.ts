/**
 * JWTs written by hand with node:crypto, so that the fuzzer can make every kind of broken token
 * (docs/auth.md): HMAC-signed with any header and payload (a wrong secret, HS384, expired, not yet
 * valid, without `sub` or `exp`), `alg: none`, bad base64, garbage. Only the fuzz server's
 * RELAY_JWT_SECRET makes a signature that verifies.
 */
import { createHmac } from "node:crypto";

export const b64url = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

const HMAC = { HS256: "sha256", HS384: "sha384", HS512: "sha512" } as const;

/** `header.payload.signature`, signed with `secret` by the header's HMAC algorithm (none: empty signature). */
export function signJwt(header: Record<string, unknown>, payload: unknown, secret: string): string {
  const head = `${b64url(JSON.stringify(header))}.${b64url(typeof payload === "string" ? payload : JSON.stringify(payload))}`;
  const alg = HMAC[header.alg as keyof typeof HMAC];
  if (!alg) return `${head}.`;
  return `${head}.${createHmac(alg, secret).update(head).digest("base64url")}`;
}

export const nowSeconds = () => Math.floor(Date.now() / 1000);
