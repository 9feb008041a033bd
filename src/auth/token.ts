/**
 * Verifies a token (docs/auth.md) with Hono's JWT helpers and reads its claims into an
 * {@link Identity}: HS256 with RELAY_JWT_SECRET, ES256/RS256 against RELAY_JWKS_URL. The
 * algorithm is chosen by what is configured and checked against the header, never taken from it
 * alone: `alg: none`, an HMAC token checked against a public key, or any other algorithm is
 * refused. The token itself never appears in an error message (Hono's own messages hold it).
 */
import { decode, verify, verifyWithJwks } from "hono/utils/jwt/jwt";
import { RelayError } from "../errors";
import { parseUser } from "../protocol/rules";
import type { Settings } from "../settings";
import { jwksKeys } from "./jwks";
import type { Identity, Rights } from "./rights";

/** Tokens longer than this are refused unread (a header or query of megabytes is not a token). */
const MAX_TOKEN_CHARS = 8192;

const invalid = (why: string) => new RelayError("unauthenticated", `invalid token: ${why}`);

/** Hono's JWT errors, by name, in the relay's terms. */
function fromHono(e: unknown): RelayError {
  if (e instanceof RelayError) return e;
  const name = (e as Error)?.name ?? "";
  if (name === "JwtTokenExpired") return new RelayError("token_expired", "token expired: get a new one");
  if (name === "JwtTokenNotBefore") return invalid("not valid yet (nbf)");
  if (name === "JwtTokenSignatureMismatched") return invalid("bad signature");
  if (name === "JwtTokenIssuedAt") return invalid("issued in the future (iat)");
  if (
    name === "JwtAlgorithmMismatch" ||
    name === "JwtAlgorithmNotAllowed" ||
    name === "JwtSymmetricAlgorithmNotAllowed"
  ) {
    return invalid("algorithm not accepted");
  }
  if (name === "JwtHeaderRequiresKid") return invalid("a JWKS token must name its key (kid)");
  return invalid("malformed");
}

function patterns(value: unknown, name: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((p) => typeof p === "string")) {
    throw invalid(`relay.${name} must be a list of room patterns`);
  }
  return value;
}

function rightsOf(claim: unknown): Rights {
  if (claim === undefined) return { subscribe: [], publish: [], presence: [], admin: false };
  if (typeof claim !== "object" || claim === null || Array.isArray(claim)) throw invalid("relay must be an object");
  const r = claim as Record<string, unknown>;
  if (r.admin !== undefined && typeof r.admin !== "boolean") throw invalid("relay.admin must be true or false");
  return {
    subscribe: patterns(r.subscribe, "subscribe"),
    publish: patterns(r.publish, "publish"),
    presence: patterns(r.presence, "presence"),
    admin: r.admin === true,
  };
}

/** The payload of `token` once its signature and times are checked. */
async function verified(token: string, s: Settings): Promise<Record<string, unknown>> {
  let alg: unknown;
  let kid: unknown;
  try {
    ({ alg, kid } = decode(token).header);
  } catch {
    throw invalid("malformed");
  }
  try {
    if (alg === "HS256") {
      if (!s.jwtSecret) throw invalid("HS256 tokens are not accepted here (no RELAY_JWT_SECRET)");
      return await verify(token, s.jwtSecret, "HS256");
    }
    if (alg === "ES256" || alg === "RS256") {
      if (!s.jwksUrl) throw invalid(`${alg} tokens are not accepted here (no RELAY_JWKS_URL)`);
      const keys = await jwksKeys(s.jwksUrl, kid, s.jwksCacheMs);
      return await verifyWithJwks(token, { keys, allowedAlgorithms: ["ES256", "RS256"] });
    }
  } catch (e) {
    throw fromHono(e);
  }
  throw invalid("algorithm not accepted (HS256, ES256 or RS256)");
}

/** The identity `token` proves; throws `unauthenticated` or `token_expired`. */
export async function verifyToken(token: string, s: Settings): Promise<Identity> {
  if (token.length > MAX_TOKEN_CHARS) throw invalid("too long");
  const payload = await verified(token, s);
  if (typeof payload.exp !== "number") throw invalid("it has no exp");
  let sub: string | undefined;
  try {
    sub = parseUser(payload.sub);
  } catch {
    sub = undefined;
  }
  if (sub === undefined) throw invalid("sub must be 1-64 characters");
  return { sub, key: `sub:${sub}`, expMs: payload.exp * 1000, rights: rightsOf(payload.relay) };
}
