/**
 * The region a client is in, for placing it on a fan-out shard near it (room/shards.ts): one of
 * Cloudflare's Durable Object location hints, from the request's `cf` data (the continent, and the
 * longitude where a continent has two hints). "any" where it is unknown, as under `wrangler dev`,
 * whose `cf` is fixed; there, with test hooks on (RELAY_TEST_HOOKS, only the test suite's servers),
 * the `X-Relay-Test-Region` header chooses it.
 */
import { isRegion, type Region } from "../room/shards";
import type { Settings } from "../settings";

/** The test hook's header: read only when RELAY_TEST_HOOKS is "true". */
export const TEST_REGION_HEADER = "X-Relay-Test-Region";

/** Middle-East countries (ISO 3166-1) that Cloudflare's "me" hint serves better than "apac". */
const MIDDLE_EAST = new Set(["AE", "BH", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "SY", "TR", "YE"]);

export function regionOf(request: Request, settings: Settings): Region {
  if (settings.testHooks) {
    const chosen = request.headers.get(TEST_REGION_HEADER);
    if (isRegion(chosen)) return chosen;
  }
  const cf = (request as { cf?: { continent?: unknown; longitude?: unknown; country?: unknown } }).cf;
  const longitude = Number(cf?.longitude);
  switch (cf?.continent) {
    case "NA":
      return longitude < -100 ? "wnam" : "enam";
    case "SA":
      return "sam";
    case "EU":
      return longitude > 20 ? "eeur" : "weur";
    case "AF":
      return "afr";
    case "OC":
      return "oc";
    case "AS":
      return MIDDLE_EAST.has(String(cf?.country)) ? "me" : "apac";
    default:
      return "any";
  }
}
