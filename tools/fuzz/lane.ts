/**
 * One fuzz lane: the connections a sequence of inputs shares. An HTTP keep-alive agent with one
 * socket (a request that breaks its connection shows on the lane's next request) and one
 * WebSocket session per mode and room, replaced when the server closed it and after a number of
 * uses (the room allows PUBLISH_RATE_PER_SECOND publishes per second per connection, 50 by
 * default, and hostile frames that decode as publishes count against it).
 */
import type { Agent } from "node:http";
import { laneAgent } from "./http-client";
import { FrameSession, type WsMode } from "./ws-session";

/** Uses of a session before it is replaced: with its sentinels, under the per-connection rate. */
const SESSION_USES = 20;

export class Lane {
  readonly agent: Agent = laneAgent();
  readonly #sessions = new Map<string, { s: FrameSession; uses: number }>();

  constructor(
    readonly base: URL,
    readonly timeoutMs: number,
  ) {}

  /** An open session in `mode` on `room` (its `subscribed` event read), or why none could be opened. */
  async session(mode: WsMode, room: string): Promise<FrameSession | string> {
    const key = `${mode} ${room}`;
    const cur = this.#sessions.get(key);
    if (cur && !cur.s.closed && cur.uses < SESSION_USES) {
      cur.uses++;
      return cur.s;
    }
    if (cur) {
      this.#sessions.delete(key);
      await cur.s.close();
    }
    const url = `${this.base.origin.replace(/^http/, "ws")}/rooms/${room}/ws`;
    const s = await FrameSession.open(url, mode, this.timeoutMs);
    if (typeof s !== "string") this.#sessions.set(key, { s, uses: 1 });
    return s;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#sessions.values()].map((v) => v.s.close()));
    this.#sessions.clear();
    this.agent.destroy();
  }
}
