/**
 * The JSON Web Key Set at RELAY_JWKS_URL, fetched once per JWKS_CACHE_SECONDS per isolate, and
 * again at once for a `kid` it does not hold (such refetches at most every {@link REFETCH_MS}, so
 * tokens naming made-up keys cannot make a fetch each): a token from an identity provider costs no
 * fetch in the common case, and a rotated key is picked up at once.
 */
import { RelayError } from "../errors";

/** A rotated key is looked for again at most this often: unknown `kid`s must not make a fetch each. */
const REFETCH_MS = 10_000;

/** A key of the set, as Hono's verifyWithJwks takes it. */
export type JWK = JsonWebKey & { kid?: string };

interface Cached {
  keys: JWK[];
  fetchedAtMs: number;
}

/** When each URL was last fetched again for an unknown `kid`. */
const lastRefetch = new Map<string, number>();

const cache = new Map<string, Cached>();
const inFlight = new Map<string, Promise<Cached>>();

async function fetchKeys(url: string): Promise<Cached> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { Accept: "application/json" } });
  } catch {
    throw new RelayError("internal", "the token's key set (RELAY_JWKS_URL) could not be fetched");
  }
  const body = (await res.json().catch(() => null)) as { keys?: unknown } | null;
  if (!res.ok || !body || !Array.isArray(body.keys)) {
    throw new RelayError("internal", `the token's key set (RELAY_JWKS_URL) answered ${res.status} without keys`);
  }
  const c = { keys: body.keys as JWK[], fetchedAtMs: Date.now() };
  cache.set(url, c);
  return c;
}

function load(url: string): Promise<Cached> {
  let p = inFlight.get(url);
  if (!p) {
    p = fetchKeys(url).finally(() => inFlight.delete(url));
    inFlight.set(url, p);
  }
  return p;
}

/** The keys to check a token whose header names `kid` against. */
export async function jwksKeys(url: string, kid: unknown, cacheMs: number): Promise<JWK[]> {
  const now = Date.now();
  let c = cache.get(url);
  if (!c || now - c.fetchedAtMs > cacheMs) c = await load(url);
  else if (!c.keys.some((k) => k.kid === kid) && now - (lastRefetch.get(url) ?? 0) > REFETCH_MS) {
    lastRefetch.set(url, now);
    c = await load(url);
  }
  return c.keys;
}
