/** Flow control (room/flow.ts): the one bound on what a subscriber may leave unread. */
import { describe, expect, it } from "vitest";
import { Flow } from "../../src/room/flow";

const socket = () => ({}) as WebSocket;
const T = 1_000_000;

describe("Flow", () => {
  it("pings every eighth of the bound, and closes a subscriber past it once a ping has waited its grace", () => {
    const flow = new Flow(800, 2000);
    const ws = socket();
    expect(flow.send(ws, 99, true, T)).toEqual({ ok: true });
    const v = flow.send(ws, 1, true, T);
    expect(v.ok && v.ping).toBeTypeOf("number");
    for (let i = 0; i < 7; i++) expect(flow.send(ws, 100, true, T).ok).toBe(true);
    // Past the bound, but the first ping was sent just now: late answers get their grace...
    expect(flow.send(ws, 100, true, T + 1999).ok).toBe(true);
    // ...and not a moment longer.
    expect(flow.send(ws, 1, true, T + 2000)).toEqual({ ok: false, first: true });
    // Once cut, always cut: the socket is being closed.
    flow.pong(ws, (v as { ping: number }).ping);
    expect(flow.send(ws, 1, true, T + 2000)).toEqual({ ok: false, first: false });
  });

  it("asks to be checked again when a subscriber goes over the bound, and cuts it then if nothing was confirmed", () => {
    const flow = new Flow(800, 2000);
    const ws = socket();
    expect(flow.send(ws, 500, true, T)).toMatchObject({ ok: true, ping: expect.any(Number) });
    // Over the bound: the room has to come back after the grace, even if it sends nothing more.
    expect(flow.send(ws, 500, true, T)).toMatchObject({ ok: true, recheckMs: 2000 });
    expect(flow.check(ws, true, T + 1000)).toEqual({ ok: true, recheckMs: 2000 });
    expect(flow.check(ws, true, T + 2000)).toEqual({ ok: false, first: true });
    expect(flow.check(ws, true, T + 3000)).toEqual({ ok: false, first: false });
  });

  it("closes a subscriber twice the bound behind at once, grace or not", () => {
    const flow = new Flow(800, 2000);
    const ws = socket();
    expect(flow.send(ws, 800, true, T).ok).toBe(true);
    expect(flow.send(ws, 800, true, T).ok).toBe(true);
    expect(flow.send(ws, 1, true, T).ok).toBe(false);
  });

  it("lets a pong confirm what was sent before its ping", () => {
    const flow = new Flow(800, 2000);
    const ws = socket();
    const v = flow.send(ws, 100, true, T);
    for (let i = 0; i < 7; i++) expect(flow.send(ws, 100, true, T).ok).toBe(true);
    // The pong for the first ping confirms its 100 bytes: 100 more fit, even long after.
    flow.pong(ws, (v as { ping: number }).ping);
    expect(flow.send(ws, 100, true, T + 60_000).ok).toBe(true);
    expect(flow.send(ws, 1, true, T + 60_000).ok).toBe(false);
  });

  it("ignores pongs with ids it never sent (a paused client cannot fake reading)", () => {
    const flow = new Flow(100, 2000);
    const ws = socket();
    flow.send(ws, 60, true, T);
    flow.pong(ws, 1);
    flow.pong(ws, 0);
    expect(flow.send(ws, 60, true, T + 2000).ok).toBe(false);
  });

  it("never pings plain mode, whose frames confirm everything sent before them, and gives it no grace", () => {
    const flow = new Flow(100, 2000);
    const ws = socket();
    expect(flow.send(ws, 90, false, T)).toEqual({ ok: true });
    flow.confirmAll(ws);
    expect(flow.send(ws, 90, false, T)).toEqual({ ok: true });
    expect(flow.send(ws, 20, false, T).ok).toBe(false);
  });

  it("keeps each socket's account apart", () => {
    const flow = new Flow(100, 2000);
    const [a, b] = [socket(), socket()];
    flow.send(a, 200, true, T);
    expect(flow.send(a, 1, true, T).ok).toBe(false);
    expect(flow.send(b, 100, true, T).ok).toBe(true);
  });
});
