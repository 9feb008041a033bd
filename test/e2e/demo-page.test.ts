/**
 * The demo page is served at / from static assets (public/), next to the Worker's routes, with a
 * strict Content-Security-Policy from public/_headers. Its behaviour in a browser: test/e2e/browser.
 */
import { expect, inject, it } from "vitest";

const get = (path: string) => fetch(`${inject("baseUrl")}${path}`, { signal: AbortSignal.timeout(5000) });

/** The page's policy, directive by directive: `default-src 'none'; ...` -> { "default-src": ["'none'"], ... }. */
function parseCsp(header: string | null): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const part of (header ?? "").split(";")) {
    const [name, ...values] = part.trim().split(/\s+/);
    if (name) out[name.toLowerCase()] = values;
  }
  return out;
}

it("serves the demo page at / with a strict Content-Security-Policy, and its script as a module file", async () => {
  const res = await get("/");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/html/);
  const csp = parseCsp(res.headers.get("content-security-policy"));
  expect(csp["default-src"]).toEqual(["'none'"]);
  expect(csp["script-src"]).toEqual(["'self'"]);
  expect(csp["style-src"]).toEqual(["'self'"]);
  expect(csp["connect-src"]).toEqual(["'self'"]);
  expect(csp["base-uri"]).toEqual(["'none'"]);
  expect(csp["form-action"]).toEqual(["'none'"]);
  expect(csp["frame-ancestors"]).toEqual(["'none'"]);
  // Trusted Types: no string becomes HTML or script through a DOM sink (innerHTML and the like throw).
  expect(csp["require-trusted-types-for"]).toEqual(["'script'"]);
  expect(csp["trusted-types"]).toEqual(["'none'"]);
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");

  // Nothing inline for the policy to refuse: the one script is a module file, styles are a file.
  const html = await res.text();
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  expect(scripts.map((m) => [m[1].trim(), m[2].trim()])).toEqual([['type="module" src="/app.js"', ""]]);
  expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
  expect(html).toMatch(/<link rel="stylesheet" href="\/style.css">/);
  // Every input has a label.
  for (const [, id] of html.matchAll(/<(?:input|select|textarea)\b[^>]*\bid="([^"]+)"/g)) {
    expect(html, `a <label for="${id}">`).toContain(`<label for="${id}">`);
  }
});

it("serves the page's module script, its style sheet and the client bundle the script imports", async () => {
  const app = await get("/app.js");
  expect(app.status).toBe(200);
  expect(app.headers.get("content-type")).toMatch(/javascript/);
  const source = await app.text();
  expect(source).toContain('import("./relay-client.js")');
  // User text reaches the page through textContent only.
  expect(source).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);

  const css = await get("/style.css");
  expect(css.status).toBe(200);
  expect(css.headers.get("content-type")).toMatch(/^text\/css/);
  await css.body?.cancel();

  const bundle = await get("/relay-client.js");
  expect(bundle.status, "public/relay-client.js (scripts/build-client.mjs builds it in pretest/prestart)").toBe(200);
  expect(bundle.headers.get("content-type")).toMatch(/javascript/);
  expect(await bundle.text()).toMatch(/export\s*\{[^}]*\bcreateClient\b/);

  // _headers configures the assets; it is not one.
  expect((await get("/_headers")).status).toBe(404);
});

it("answers the Worker's routes beside the assets, without the page's headers", async () => {
  const health = await get("/healthz");
  expect(await health.json()).toEqual({ ok: true });
  expect(health.headers.get("content-security-policy")).toBeNull();
  const presence = await get("/rooms/demo-page-check/presence");
  expect(presence.status).toBe(200);
  expect(await presence.json()).toMatchObject({ room: "demo-page-check" });
});
