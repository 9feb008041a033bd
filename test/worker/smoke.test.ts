import { SELF } from "cloudflare:test";
import { expect, it } from "vitest";

it("answers /healthz", async () => {
  const res = await SELF.fetch("https://relay.test/healthz");
  expect(await res.json()).toEqual({ ok: true });
});
