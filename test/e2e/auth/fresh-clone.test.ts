/**
 * docs/auth.md, "Anonymous access": on a fresh clone `npm start` needs no set-up. It runs
 * scripts/dev-vars.mjs, which writes .dev.vars from .dev.vars.example when there is none, and
 * `wrangler dev` reads it. This starts a server on exactly those vars (wrangler.toml's, plus
 * .dev.vars.example as the env file) and runs the README's examples against it: the demo page,
 * an anonymous publish, the SSE stream. It also runs the script in an empty directory.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../../tools/dev-server";
import { publishJson, SseClient, uniqueRoom, waitFor } from "../clients";

const ROOT = new URL("../../../", import.meta.url).pathname;
let server: DevServer | undefined;
let base: string;

beforeAll(async () => {
  server = await startDevServer({ open: false, envFile: join(ROOT, ".dev.vars.example") });
  base = server.baseUrl;
}, READY_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
});

describe("npm start on a fresh clone", () => {
  it("writes .dev.vars from the example when there is none, and leaves an existing one alone", () => {
    const dir = mkdtempSync(join(tmpdir(), "relay-fresh-"));
    try {
      copyFileSync(join(ROOT, ".dev.vars.example"), join(dir, ".dev.vars.example"));
      execFileSync(process.execPath, [join(ROOT, "scripts/dev-vars.mjs")], { cwd: dir });
      expect(readFileSync(join(dir, ".dev.vars"), "utf8")).toMatch(/^ANONYMOUS_ACCESS=publish$/m);
      writeFileSync(join(dir, ".dev.vars"), "ANONYMOUS_ACCESS=none\n");
      execFileSync(process.execPath, [join(ROOT, "scripts/dev-vars.mjs")], { cwd: dir });
      expect(readFileSync(join(dir, ".dev.vars"), "utf8")).toBe("ANONYMOUS_ACCESS=none\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("serves the demo page, and the README's publish and SSE examples work without a token", async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<html/i);
    const room = uniqueRoom("fresh");
    const r = await publishJson(base, room, { text: "hello", id: "my-client-id-1" });
    expect(r.status).toBe(201);
    const sse = new SseClient(`${base}/rooms/${room}/sse?since=0`);
    try {
      await waitFor("the event over SSE", () => sse.events.find((e) => e.data.text === "hello"), 5000);
    } finally {
      sse.close();
    }
  });
});
