/**
 * JWTs for the auth tests, minted in Node with Hono's own helper (`hono/jwt`, the one the relay
 * verifies with): HS256 with a shared secret, ES256 and RS256 with WebCrypto key pairs whose public
 * halves a tiny JWKS server hands out. And the hostile ones: a bad signature, `alg: none`, an HMAC
 * token keyed with the public key (algorithm confusion), HS384, expired, not yet valid, an unknown
 * or missing `kid`, missing claims, garbage.
 */
import { createHmac, createPublicKey, randomBytes, webcrypto } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { sign } from "hono/jwt";

/** The HS256 secret the test servers are started with (RELAY_JWT_SECRET). */
export const SECRET = `e2e-secret-${randomBytes(16).toString("hex")}`;

/** The `relay` claim: the rights. */
export interface Rights {
  subscribe?: string[];
  publish?: string[];
  presence?: string[];
  admin?: boolean;
}

export interface Claims {
  sub?: string;
  exp?: number;
  nbf?: number;
  iat?: number;
  relay?: Rights;
  [claim: string]: unknown;
}

/** Seconds since the epoch, now. */
export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Every right (subscribe, publish, presence) in the rooms matching `patterns`. */
export function allRights(...patterns: string[]): Rights {
  return { subscribe: patterns, publish: patterns, presence: patterns };
}

/** Claims for `sub` with `relay` rights, valid for `ttlSeconds` (10 minutes unless told). */
export function claims(sub: string, relay: Rights, ttlSeconds = 600): Claims {
  return { sub, relay, exp: nowSeconds() + ttlSeconds };
}

/** An HS256 token signed with `secret` (the servers' SECRET unless told). */
export function hs256(payload: Claims, secret = SECRET): Promise<string> {
  return sign(payload, secret, "HS256");
}

/** The same with another HMAC algorithm (HS384, HS512): the relay refuses any but HS256. */
export function hmacWith(alg: "HS384" | "HS512", payload: Claims, secret = SECRET): Promise<string> {
  return sign(payload, secret, alg);
}

export type KeyAlg = "ES256" | "RS256";

/** A JWK as it goes into a JWKS and into hono's sign(): with `kid` and `alg`. */
export interface Jwk extends webcrypto.JsonWebKey {
  kid?: string;
  alg?: string;
  use?: string;
}

export interface SigningKey {
  kid: string;
  alg: KeyAlg;
  /** The private half as a JWK with `kid` and `alg`: hono's sign() writes both into the header. */
  privateJwk: Jwk;
  /** The public half, as served in the JWKS. */
  publicJwk: Jwk;
  /** The public half as an SPKI PEM (what a naive server might use as an HMAC key). */
  publicPem: string;
}

/** A new ES256 (P-256) or RS256 (2048-bit) key pair, made with WebCrypto and exported as JWKs. */
export async function generateSigningKey(alg: KeyAlg, kid: string): Promise<SigningKey> {
  const params =
    alg === "ES256"
      ? { name: "ECDSA", namedCurve: "P-256" }
      : { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" };
  const { subtle } = webcrypto;
  const pair = (await subtle.generateKey(params, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const privateJwk: Jwk = { ...(await subtle.exportKey("jwk", pair.privateKey)), kid, alg };
  const publicJwk: Jwk = { ...(await subtle.exportKey("jwk", pair.publicKey)), kid, alg, use: "sig" };
  const publicPem = createPublicKey({ key: publicJwk as import("node:crypto").JsonWebKey, format: "jwk" })
    .export({ type: "spki", format: "pem" })
    .toString();
  return { kid, alg, privateJwk, publicJwk, publicPem };
}

/** A token signed with `key` (ES256 or RS256; its `kid` in the header). */
export function signWith(key: SigningKey, payload: Claims): Promise<string> {
  return sign(payload, key.privateJwk);
}

/** A token signed with `key` but with no `kid` in its header (a JWKS token must name its key). */
export function signWithoutKid(key: SigningKey, payload: Claims): Promise<string> {
  const { kid: _kid, ...jwk } = key.privateJwk;
  return sign(payload, jwk);
}

// ---------------------------------------------------------------------------------------------
// Hostile tokens

const b64url = (data: string | Buffer) => Buffer.from(data).toString("base64url");
const part = (json: unknown) => b64url(JSON.stringify(json));

/** A JWT with the given header and payload and an HMAC-SHA256 signature keyed with `key`'s bytes. */
function hmacToken(header: Record<string, unknown>, payload: Claims, key: string | Buffer): string {
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${createHmac("sha256", key).update(input).digest("base64url")}`;
}

/** HS256, signed with a secret the relay does not know. */
export function wrongSecret(payload: Claims): Promise<string> {
  return hs256(payload, `not-the-secret-${randomBytes(8).toString("hex")}`);
}

/** A validly signed token whose payload was changed afterwards (the signature no longer matches). */
export function tampered(token: string, change: Claims): string {
  const [header, payload, signature] = token.split(".");
  const claimsOf = JSON.parse(Buffer.from(payload, "base64url").toString()) as Claims;
  return `${header}.${part({ ...claimsOf, ...change })}.${signature}`;
}

/** `alg: none`: header {"alg":"none","typ":"JWT"}, the payload, and an empty signature. */
export function algNone(payload: Claims): string {
  return `${part({ alg: "none", typ: "JWT" })}.${part(payload)}.`;
}

/**
 * Algorithm confusion: an HS256 token naming the JWKS key's `kid`, its HMAC keyed with the public
 * key's bytes (the JWK as JSON, or the SPKI PEM), which anyone can read. A verifier that lets the
 * token pick the algorithm would check it against that public key as an HMAC secret.
 */
export function algConfusion(key: SigningKey, payload: Claims, as: "jwk" | "pem" = "jwk"): string {
  const hmacKey = as === "jwk" ? JSON.stringify(key.publicJwk) : key.publicPem;
  return hmacToken({ alg: "HS256", typ: "JWT", kid: key.kid }, payload, hmacKey);
}

/** Claims that expired `agoSeconds` ago (signed correctly). */
export function expiredClaims(sub: string, relay: Rights, agoSeconds = 60): Claims {
  return { sub, relay, exp: nowSeconds() - agoSeconds, iat: nowSeconds() - agoSeconds - 600 };
}

/** Claims not valid before `inSeconds` from now (signed correctly, not expired). */
export function notYetValidClaims(sub: string, relay: Rights, inSeconds = 3600): Claims {
  return { sub, relay, nbf: nowSeconds() + inSeconds, exp: nowSeconds() + inSeconds + 600 };
}

/** Strings that are not JWTs at all, or only look like one. */
export const GARBAGE_TOKENS: readonly string[] = [
  "garbage",
  `${part({ alg: "HS256", typ: "JWT" })}.not-json.c2ln`,
  `${part({ alg: "HS256", typ: "JWT" })}..`,
];

// ---------------------------------------------------------------------------------------------
// A tiny JWKS server

export interface JwksServer {
  /** http://127.0.0.1:<port>/jwks.json */
  url: string;
  /** How many times the JWKS was fetched. */
  readonly fetches: number;
  /** Serves these keys from now on (a key rotation). */
  setKeys(keys: Jwk[]): void;
  stop(): Promise<void>;
}

/** Serves {"keys": [...public JWKs]} at /jwks.json on 127.0.0.1, on a free port. */
export async function startJwksServer(keys: Jwk[]): Promise<JwksServer> {
  let fetches = 0;
  let body = JSON.stringify({ keys });
  const server = createServer((req, res) => {
    if (req.url?.split("?")[0] === "/jwks.json") {
      fetches++;
      res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=300" }).end(body);
    } else res.writeHead(404).end();
  });
  await new Promise<void>((done, fail) => {
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get fetches() {
      return fetches;
    },
    setKeys(next) {
      body = JSON.stringify({ keys: next });
    },
    stop: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
