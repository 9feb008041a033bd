/** Flow control (room/flow.ts): the one bound on what a subscriber may leave unread. */
import { describe, expect, it } from "vitest";
import { Flow } from "../../src/room/flow";

const socket = () => ({}) as WebSocket;

describe("Flow", () => {
  it("pings every eighth of the bound, and a pong confirms what was sent before its ping", () => {
    const flow = new Flow(800);
    const ws = socket();
    expect(flow.send(ws, 99, true)).toEqual({ ok: true });
    const v = flow.send(ws, 1, true);
    expect(v.ok && v.ping).toBeTypeOf("number");
    // 700 more fit (800 unconfirmed), the next byte does not.
    for (let i = 0; i < 7; i++) expect(flow.send(ws, 100, true).ok).toBe(true);
    expect(flow.send(ws, 1, true)).toEqual({ ok: false, first: true });
    // Once cut, always cut: the socket is being closed.
    flow.pong(ws, (v as { ping: number }).ping);
    expect(flow.send(ws, 1, true)).toEqual({ ok: false, first: false });
  });

  it("lets a pong confirm what was sent before its ping", () => {
    const flow = new Flow(800);
    const ws = socket();
    const v = flow.send(ws, 100, true);
    for (let i = 0; i < 7; i++) expect(flow.send(ws, 100, true).ok).toBe(true);
    // The pong for the first ping confirms its 100 bytes: 100 more fit, then no more.
    flow.pong(ws, (v as { ping: number }).ping);
    expect(flow.send(ws, 100, true).ok).toBe(true);
    expect(flow.send(ws, 1, true).ok).toBe(false);
  });

  it("ignores pongs with ids it never sent (a paused client cannot fake reading)", () => {
    const flow = new Flow(100);
    const ws = socket();
    flow.send(ws, 60, true);
    flow.pong(ws, 1);
    flow.pong(ws, 0);
    expect(flow.send(ws, 60, true).ok).toBe(false);
  });

  it("never pings plain mode, whose frames confirm everything sent before them", () => {
    const flow = new Flow(100);
    const ws = socket();
    expect(flow.send(ws, 90, false)).toEqual({ ok: true });
    flow.confirmAll(ws);
    expect(flow.send(ws, 90, false)).toEqual({ ok: true });
    expect(flow.send(ws, 20, false).ok).toBe(false);
  });

  it("keeps each socket's account apart", () => {
    const flow = new Flow(100);
    const [a, b] = [socket(), socket()];
    flow.send(a, 100, true);
    expect(flow.send(a, 1, true).ok).toBe(false);
    expect(flow.send(b, 100, true).ok).toBe(true);
  });
});
