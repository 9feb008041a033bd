/**
 * Bad input that every route checks before anything reaches a room: invalid room names, a plain
 * GET on the WebSocket route, unknown routes, history offsets that are not offsets. (Malformed
 * and oversized input per transport is in behaviour/; hostile input in hostile-input.test.ts.)
 */
import { describe, expect, inject, it } from "vitest";
import { type ErrorJson, getJson, publishJson, refusedUpgrade, uniqueRoom, wsUrl } from "./clients";

const baseUrl = inject("baseUrl");

function expectError(r: { status: number; body: unknown }, status: number, code: string): void {
  expect(r.status).toBe(status);
  const body = r.body as { error: ErrorJson };
  expect(Object.keys(body)).toEqual(["error"]);
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(body.error.message.length).toBeGreaterThan(0);
}

describe("invalid room names", () => {
  const names = ["bad%20name", "a".repeat(65), "bad*name", "caf%C3%A9"];

  it.each(names)("%s → 400 invalid_argument on every route", async (name) => {
    const path = `/rooms/${name}`;
    expectError(await refusedUpgrade(wsUrl(baseUrl, `${path}/ws`)), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/ws`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/sse`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/messages`), 400, "invalid_argument");
    expectError(await publishJson(baseUrl, name, { text: "hi" }), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/presence`), 400, "invalid_argument");
    expectError(await getJson(baseUrl, `${path}/stats`), 400, "invalid_argument");
  });

  it("accepts a 64-character name of every allowed character class", async () => {
    const name = `Az09._~-${"x".repeat(56)}`;
    expect(name).toHaveLength(64);
    const r = await publishJson(baseUrl, name, { text: "edge" });
    expect(r.status).toBe(201);
    expect(r.body.room).toBe(name);
  });
});

describe("bad requests over HTTP", () => {
  it("answers a non-upgrade GET on /ws with 426", async () => {
    expectError(await getJson(baseUrl, `/rooms/${uniqueRoom("u")}/ws`), 426, "upgrade_required");
  });

  it("answers unknown routes with 404 not_found", async () => {
    expectError(await getJson(baseUrl, "/nope"), 404, "not_found");
  });

  it("rejects history offsets that are not non-negative integers", async () => {
    const room = uniqueRoom("since");
    for (const q of ["since=abc", "since=-1", "since=1.5", "since=99999999999999999", "limit=abc", "limit=-3"]) {
      expectError(await getJson(baseUrl, `/rooms/${room}/messages?${q}`), 400, "invalid_argument");
    }
  });
});
