/** The demo page is served at / from static assets, next to the Worker's routes. */
import { expect, inject, it } from "vitest";

it("serves the demo chat page at /, which speaks relay.v1.json and resumes from its last offset", async () => {
  const res = await fetch(`${inject("baseUrl")}/`, { signal: AbortSignal.timeout(5000) });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  const html = await res.text();
  expect(html).toContain('new WebSocket(url, "relay.v1.json")');
  expect(html).toMatch(/since: String\(last\)/);
  // The Worker's routes still answer beside the assets.
  const health = await fetch(`${inject("baseUrl")}/healthz`);
  expect(await health.json()).toEqual({ ok: true });
});
