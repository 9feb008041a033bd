/**
 * Room: one Durable Object per room. It owns the log, the order, fan-out and presence, and knows
 * nothing of SSE or Connect: every subscriber is a hibernatable WebSocket (a browser's own, or a
 * Worker-side bridge), and publishes arrive as frames on those sockets or by RPC from the Worker.
 *
 * Hibernation-safe: everything in memory is rebuilt from SQLite (the log) and the sockets'
 * attachments, so every handler works on a freshly constructed instance.
 */
import { DurableObject } from "cloudflare:workers";
import { type Env, type Limits, readLimits } from "../config";
import { type ErrorData, HTTP_STATUS, RelayError, type Result } from "../errors";
import { closeCode, closeSocket, REPLAY_CONTINUE } from "../protocol/close-codes";
import { type EventData, eventJson } from "../protocol/events";
import {
  decodePublish,
  encodeAck,
  encodeError,
  encodeEvent,
  encodeEvents,
  type Frame,
  type Mode,
  modeFromProtocols,
} from "../protocol/frames";
import { Batch } from "./batch";
import { RoomLog, type StoredEvent } from "./log";
import { type PublishInput, utf8Length, validatePublish } from "./publish";
import { RateLimiter } from "./rate-limit";
import { planResume } from "./resume";
import { type Attachment, Subscribers, TRANSPORTS, type Transport } from "./subscriber";

/** A stored event and whether it was a retry of an earlier publish. */
export interface PublishResult {
  event: EventData;
  duplicate: boolean;
}

/** A page of history. */
export interface HistoryPage {
  events: EventData[];
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  hasMore: boolean;
}

/** A room's counters, for operators and the benchmark (`GET /rooms/:room/stats`). */
export interface RoomStats {
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  connections: Record<Transport, number>;
  /** When this instance of the object was constructed: a later value means it was evicted (hibernated) in between. */
  objectStartedAtMs: number;
  /** Fan-outs since then, and the events they carried: events / flushes is the mean batch. */
  flushes: number;
  flushedEvents: number;
}

/** One connection, as presence reports it. */
export interface Member {
  user: string;
  transport: Transport;
  connectedAtMs: number;
}

const MODES: readonly Mode[] = ["plain", "json", "proto"];

export class Room extends DurableObject<Env> {
  readonly #limits: Limits;
  readonly #log: RoomLog;
  readonly #subscribers = new Subscribers();
  readonly #rate: RateLimiter;
  readonly #startedAtMs = Date.now();
  /** Events stored but not yet fanned out (see #flush). */
  readonly #pending = new Batch();
  #flushScheduled = false;
  #flushes = 0;
  #flushedEvents = 0;
  /** Each event's JSON, encoded once for its ack and its fan-out. */
  readonly #json = new WeakMap<EventData, string>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#limits = readLimits(env);
    this.#log = new RoomLog(ctx.storage.sql, {
      maxCount: this.#limits.historyMaxCount,
      maxAgeMs: this.#limits.historyMaxAgeMs,
    });
    this.#rate = new RateLimiter(this.#limits.publishRatePerSecond);
  }

  /**
   * Subscribes a WebSocket: `/subscribe?room=&transport=&user=&since=&epoch=`, built by the Worker
   * (clients never reach this URL directly). The mode comes from `Sec-WebSocket-Protocol`.
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return errorResponse(new RelayError("upgrade_required", "expected a WebSocket upgrade"));
    }
    const q = new URL(request.url).searchParams;
    const transport = (q.get("transport") ?? "websocket") as Transport;
    const sinceParam = q.get("since");
    const { mode, protocol } = modeFromProtocols(request.headers.get("Sec-WebSocket-Protocol"));
    const att: Attachment = {
      room: q.get("room") ?? "",
      user: q.get("user") || "anonymous",
      transport: TRANSPORTS.includes(transport) ? transport : "websocket",
      mode,
      connectedAtMs: Date.now(),
    };
    const headers: HeadersInit = protocol ? { "Sec-WebSocket-Protocol": protocol } : {};
    const { 0: client, 1: server } = new WebSocketPair();

    if (this.ctx.getWebSockets().length >= this.#limits.maxConnectionsPerRoom) {
      const full = new RelayError("room_full", "the room has as many connections as it allows");
      // A bridge answers its own client in HTTP terms; a browser socket gets a close code it can read.
      if (att.transport !== "websocket") return errorResponse(full);
      server.accept();
      server.close(closeCode(full.code), full.message);
      return new Response(null, { status: 101, webSocket: client, headers });
    }

    // Synchronous from here to the return: no publish can interleave, so the replay and the live
    // stream meet without a gap or a duplicate. Events still waiting for their fan-out go out
    // first: they are in the log, so this socket gets them in its replay or not at all.
    this.#flush();
    const now = Date.now();
    const plan = planResume(this.#log, now, sinceParam === null ? undefined : Number(sinceParam), q.get("epoch"));
    const base = { room: att.room, epoch: this.#log.epoch, id: "", user: "", timeMs: now, text: "" };
    const range = { firstSeq: plan.firstSeq, lastSeq: this.#log.lastSeq };
    const frames: Frame[] = [encodeEvent(att.mode, { ...base, ...range, seq: 0, kind: "subscribed" })];
    if (plan.gap) frames.push(encodeEvent(att.mode, { ...base, ...range, seq: 0, kind: "gap", ...plan.gap }));
    // A replay is sent at once, so it is bounded in bytes: past REPLAY_MAX_BYTES the client gets
    // what fits, then close REPLAY_CONTINUE, and resumes from the last offset it got (SSE and
    // Connect clients do so by themselves). The room never buffers a whole large log.
    // The replay goes in batches, like a busy room's fan-out: far fewer frames to send and bridge.
    let bytes = 0;
    let paused = false;
    const group = new Batch();
    const sendGroup = () => {
      const events = group.take();
      if (events.length === 0) return;
      const jsons = att.mode === "proto" ? [] : events.map((g) => this.#jsonOf(g));
      for (const f of encodeEvents(att.mode, events, jsons)) {
        bytes += typeof f === "string" ? f.length : f.byteLength;
        frames.push(f);
      }
    };
    if (plan.replayFrom !== undefined) {
      for (const e of this.#log.iterate(plan.replayFrom - 1, now)) {
        if (bytes + group.size >= this.#limits.replayMaxBytes) {
          paused = true;
          break;
        }
        const data = this.#event(att.room, e);
        if (!group.fits(data)) sendGroup();
        group.add(data);
      }
      sendGroup();
    }
    if (paused) {
      // Not a subscriber: a plain (not hibernatable) socket that gets its part and is closed. A
      // hibernatable socket closed by the room lingers ~10 s before the client sees the close.
      server.accept();
      for (const f of frames) this.#send(server, f);
      closeSocket(server, REPLAY_CONTINUE, `replay paused after ${bytes} bytes: resume from the last seq`);
    } else {
      this.ctx.acceptWebSocket(server, [att.mode]);
      this.#subscribers.attach(server, att);
      for (const f of frames) this.#send(server, f);
    }
    return new Response(null, { status: 101, webSocket: client, headers });
  }

  /** Publishes one message (RPC from the Worker's HTTP and Connect routes). */
  publish(room: string, input: PublishInput): Result<PublishResult> {
    try {
      return { ok: true, value: this.#publish(room, input) };
    } catch (e) {
      return { ok: false, error: errorData(e) };
    }
  }

  /** Reads a page of the log (RPC). `limit` is clamped to HISTORY_PAGE_LIMIT. */
  history(room: string, since: number, limit: number): Result<HistoryPage> {
    if (!Number.isSafeInteger(since) || since < 0) {
      return { ok: false, error: { code: "invalid_argument", message: "since must be a non-negative integer" } };
    }
    const max = this.#limits.historyPageLimit;
    const n = Number.isSafeInteger(limit) && limit > 0 ? Math.min(limit, max) : max;
    const now = Date.now();
    const rows = this.#log.read(since, n + 1, now);
    const first = this.#log.firstAvailable(now);
    return {
      ok: true,
      value: {
        events: rows.slice(0, n).map((e) => this.#event(room, e)),
        epoch: this.#log.epoch,
        firstSeq: first > this.#log.lastSeq ? 0 : first,
        lastSeq: this.#log.lastSeq,
        hasMore: rows.length > n,
      },
    };
  }

  /** Who is connected now, on every transport (RPC). */
  presence(): Member[] {
    return this.ctx.getWebSockets().map((ws) => {
      const { user, transport, connectedAtMs } = this.#subscribers.get(ws);
      return { user, transport, connectedAtMs };
    });
  }

  /** The room's counters (RPC). */
  stats(): RoomStats {
    const connections: Record<Transport, number> = { websocket: 0, sse: 0, connect: 0 };
    for (const ws of this.ctx.getWebSockets()) connections[this.#subscribers.get(ws).transport]++;
    const first = this.#log.firstAvailable(Date.now());
    return {
      epoch: this.#log.epoch,
      firstSeq: first > this.#log.lastSeq ? 0 : first,
      lastSeq: this.#log.lastSeq,
      connections,
      objectStartedAtMs: this.#startedAtMs,
      flushes: this.#flushes,
      flushedEvents: this.#flushedEvents,
    };
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const att = this.#subscribers.get(ws);
    const size = typeof message === "string" ? frameBytes(message, this.#limits.maxFrameBytes) : message.byteLength;
    if (size > this.#limits.maxFrameBytes) {
      closeSocket(ws, closeCode("too_large"), `frame larger than ${this.#limits.maxFrameBytes} bytes`);
      return;
    }
    let id = "";
    try {
      const req = decodePublish(att.mode, message);
      id = req.id;
      if (!this.#rate.take(ws, Date.now())) {
        throw new RelayError("rate_limited", `more than ${this.#rate.ratePerSecond} publishes per second`);
      }
      const result = this.#publish(att.room, { text: req.text, id: req.id, user: req.user || att.user });
      // Plain mode has no ack: the echo of the event is its answer, so it goes out now (with
      // whatever else is waiting, in order) instead of at the next timer tick.
      if (att.mode === "plain") this.#flush();
      else this.#send(ws, encodeAck(att.mode, result.event, result.duplicate, this.#jsonOf(result.event)));
    } catch (e) {
      const err = RelayError.from(e);
      if (err.code === "too_large") closeSocket(ws, closeCode(err.code), err.message);
      else this.#send(ws, encodeError(att.mode, errorData(err), id));
    }
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // Answer the close ourselves; otherwise the peer sees an unclean 1006 ~10 s later (TOOLCHAIN.md).
    closeSocket(ws, code, reason);
  }

  override webSocketError(ws: WebSocket, error: unknown): void {
    console.warn("room socket error", error);
    closeSocket(ws, 1011, "socket error");
  }

  #publish(room: string, input: PublishInput): PublishResult {
    const valid = validatePublish(input, this.#limits.maxMessageBytes);
    const { event, duplicate } = this.#log.append(valid, Date.now());
    const data = this.#event(room, event);
    // A retry is answered with the original event and not fanned out again.
    if (!duplicate) this.#enqueue(data);
    return { event: data, duplicate };
  }

  /**
   * Queues a stored event for the next fan-out, which runs on the next timer tick: the runtime
   * runs it once the events already waiting for this object (a burst of frames, other publishers)
   * are handled, so they share it. A full batch goes out at once, so a steady stream of publishes
   * that keeps the timer from running cannot hold events back.
   */
  #enqueue(e: EventData): void {
    if (!this.#pending.fits(e)) this.#flush();
    this.#pending.add(e);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setTimeout(() => this.#flush(), 0);
    }
  }

  /**
   * Fans out the events stored since the last flush: per mode, one frame per subscriber for all
   * of them (plain mode: one per event), each event encoded once. A frame costs the runtime about
   * as much to send as one event, so under load this multiplies what a room can deliver, and an
   * idle room still sends each event at once. Durability is unchanged: the output gate holds
   * every frame until the events are written. Acks do not wait for this: a publisher can get its
   * ack before the frame that carries its event.
   */
  #flush(): void {
    this.#flushScheduled = false;
    const events = this.#pending.take();
    if (events.length === 0) return;
    this.#flushes++;
    this.#flushedEvents += events.length;
    let jsons: string[] | undefined;
    for (const mode of MODES) {
      const sockets = this.ctx.getWebSockets(mode);
      if (sockets.length === 0) continue;
      jsons ??= events.map((e) => this.#jsonOf(e));
      for (const frame of encodeEvents(mode, events, jsons)) {
        for (const ws of sockets) this.#send(ws, frame);
      }
    }
  }

  #jsonOf(e: EventData): string {
    let json = this.#json.get(e);
    if (json === undefined) {
      json = eventJson(e);
      this.#json.set(e, json);
    }
    return json;
  }

  #send(ws: WebSocket, frame: Frame): void {
    try {
      ws.send(frame);
    } catch {
      // The socket is closing; its webSocketClose cleans up.
    }
  }

  #event(room: string, e: StoredEvent): EventData {
    return { room, epoch: this.#log.epoch, kind: "message", ...e };
  }
}

function frameBytes(s: string, max: number): number {
  // UTF-8 is at least as long as UTF-16 units and at most 3x: measure only when it matters.
  return s.length > max || s.length * 3 <= max ? s.length : utf8Length(s);
}

function errorData(e: unknown): ErrorData {
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("room error", e);
  return { code: err.code, message: err.message };
}

function errorResponse(err: RelayError): Response {
  return Response.json(err.toJSON(), { status: HTTP_STATUS[err.code] });
}
