/** The client's region, for placing it on a fan-out shard near it (src/edge/region.ts). */
import { describe, expect, it } from "vitest";
import { regionOf } from "../../src/edge/region";
import { readSettings } from "../../src/settings";

const at = (cf: Record<string, unknown> | undefined, headers: Record<string, string> = {}) =>
  new Request("https://relay.test/rooms/r/ws", { cf, headers } as RequestInit);

describe("regionOf", () => {
  const settings = readSettings({});
  it("maps the request's cf data to a Durable Object location hint", () => {
    expect(regionOf(at({ continent: "NA", longitude: "-122.4" }), settings)).toBe("wnam");
    expect(regionOf(at({ continent: "NA", longitude: "-74.0" }), settings)).toBe("enam");
    expect(regionOf(at({ continent: "SA", longitude: "-46.6" }), settings)).toBe("sam");
    expect(regionOf(at({ continent: "EU", longitude: "2.35" }), settings)).toBe("weur");
    expect(regionOf(at({ continent: "EU", longitude: "37.6" }), settings)).toBe("eeur");
    expect(regionOf(at({ continent: "AS", country: "JP" }), settings)).toBe("apac");
    expect(regionOf(at({ continent: "AS", country: "AE" }), settings)).toBe("me");
    expect(regionOf(at({ continent: "OC" }), settings)).toBe("oc");
    expect(regionOf(at({ continent: "AF" }), settings)).toBe("afr");
    expect(regionOf(at(undefined), settings)).toBe("any");
  });

  it("lets the test hook's header choose only when RELAY_TEST_HOOKS is on, and only a known region", () => {
    const header = { "X-Relay-Test-Region": "apac" };
    expect(regionOf(at({ continent: "EU", longitude: "2" }, header), settings)).toBe("weur");
    const hooks = readSettings({ RELAY_TEST_HOOKS: "true" });
    expect(regionOf(at({ continent: "EU", longitude: "2" }, header), hooks)).toBe("apac");
    expect(regionOf(at(undefined, { "X-Relay-Test-Region": "mars" }), hooks)).toBe("any");
  });
});
