/**
 * Room: one Durable Object per room. It owns the log, the order, fan-out, flow control and
 * presence, and knows no transport: every subscriber is a hibernatable WebSocket in one of the
 * formats of protocol/formats.ts (a browser's own socket, or a Worker-side bridge), and publishes
 * arrive as frames on those sockets or by RPC from the Worker.
 *
 * Hibernation-safe: everything in memory is rebuilt from SQLite (the log) and the sockets'
 * attachments, so every handler works on a freshly constructed instance.
 */
import { DurableObject } from "cloudflare:workers";
import { anonymous, can, type Principal, principal } from "../auth/rights";
import { verifyToken } from "../auth/token";
import { CODES, type ErrorCode, type ErrorData, RelayError, type Result } from "../errors";
import { closedUpgrade, closeReplyCode, closeSocket } from "../protocol/close";
import { EncodedEvent, type EventData, type MemberData } from "../protocol/events";
import {
  decodeClientFrame,
  encodeAck,
  encodeError,
  encodeEvents,
  encodeHeartbeat,
  encodePing,
  encodeRefreshed,
  FORMATS,
  type Format,
  type Frame,
  formatFromProtocols,
  frameSize,
  HEARTBEAT_TEXT,
  isFormat,
} from "../protocol/formats";
import { type PublishInput, parsePublish, utf8Length } from "../protocol/rules";
import { readSettings, type Settings, type Vars } from "../settings";
import { Batch } from "./batch";
import { type Attachment, Connections } from "./connections";
import { Flow, type Verdict } from "./flow";
import { RoomLog, type StoredEvent } from "./log";
import { type Opening, opening } from "./opening";
import { memberOf, members, mergeMembers } from "./presence";
import { RateLimiter, UserRateLimiter } from "./rate-limit";
import { ShardMembers } from "./shard-members";
import {
  isRegion,
  type PushResult,
  parseShardName,
  type Region,
  type ShardOpening,
  type ShardPush,
  ShardSet,
} from "./shards";
import { Upstream } from "./upstream";

/** What the room gets from the runtime: the settings, and the anonymous new-room rate limit. */
export interface RoomEnv extends Vars {
  /** `[[ratelimits]]` NEW_ROOMS: new rooms per anonymous client address (docs/auth.md). */
  NEW_ROOMS?: RateLimit;
  /** The Room namespace itself: a shard reaches its room's leader through it, a leader its shards. */
  ROOM?: DurableObjectNamespace<Room>;
}

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

/** A room's counters: relay.v1.RoomStats as plain data. */
export interface RoomStats {
  epoch: string;
  firstSeq: number;
  lastSeq: number;
  connections: Record<string, number>;
  objectStartedAtMs: number;
  flushes: number;
  flushedEvents: number;
  slowDisconnects: number;
  /** Open fan-out shards (room/shards.ts). */
  shards: number;
  /** Time spent fanning out, by the object's clock (relay.v1.RoomStats.fan_out_us). */
  fanOutUs: number;
}

/** What a subscription asks for: the query of the room's internal subscribe URL (see edge/room-client.ts). */
export interface SubscribeQuery {
  room: string;
  via: string;
  /** Who subscribes, as the Worker admitted it. */
  who: Principal;
  since?: number;
  epoch?: string;
  /** A bridge's format; a client WebSocket's comes from its subprotocol. */
  format?: Format;
  /** Whether it gets presence: the members now, then joins and leaves. */
  presence: boolean;
  /** The client's region: where a fan-out shard for it is placed. */
  region: Region;
  /** Set when the Worker opens it on a fan-out shard (this object's name), after the leader placed it there. */
  shard?: string;
}

/** How long a subscriber placed on a shard waits for its opening from the leader before it is told to retry. */
const SHARD_OPENING_TIMEOUT_MS = 10_000;
/** Acks that wait for one log write at most (see #acked). */
const ACKS_PER_COMMIT = 8;

/** A WebSocket text frame holding U+FFFD: the runtime's replacement for bytes that were not UTF-8 (see handleFrame). */
const REPLACEMENT = "\uFFFD";

export class Room extends DurableObject<RoomEnv> {
  readonly #settings: Settings;
  readonly #log: RoomLog;
  readonly #connections: Connections;
  readonly #flow: Flow;
  readonly #rate: RateLimiter;
  readonly #userRate: UserRateLimiter;
  /** Set while an anonymous client's first publish into this room waits for its new-room permit. */
  #gate: Promise<unknown> | undefined;
  /** Alarm updates, one after another (see #armExpiry). */
  #alarmChain: Promise<void> = Promise.resolve();
  readonly #startedAtMs = Date.now();
  /** Events stored but not yet fanned out (see #flush). */
  readonly #pending = new Batch();
  /**
   * The timer of the next flush: one at a time. A flush that runs sooner (a full batch, a plain-mode
   * echo, 8 acks) leaves it be, so a busy room never piles up timers (a request may hold 10,000).
   */
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Acks of publishes whose rows wait for the next flush's log write (see #flush). */
  #acks: { ws: WebSocket; format: Format; frame: Frame; id: string }[] = [];
  /** Settled by the next flush once the log is written: what a publish by RPC waits for. */
  #written: { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void } | undefined;
  #flushes = 0;
  #flushedEvents = 0;
  #slowDisconnects = 0;
  /** Microseconds spent in fan-out (see RoomStats.fanOutUs). */
  #fanOutUs = 0;
  /** Sockets whose leave has been handled (the room closed them; their close event comes later). */
  readonly #departed = new WeakSet<WebSocket>();
  /** As a room's leader: its fan-out shards. */
  readonly #shards: ShardSet<DurableObjectStub<Room>>;
  /** As a fan-out shard: its place in the leader's stream. */
  #upstream: Upstream | undefined;
  /** As a fan-out shard: subscribers waiting for their opening, by token (see #subscribeOnShard). */
  readonly #openings = new Map<string, (o: ShardOpening, late: boolean) => void>();
  /** As a fan-out shard: its leader's stub (see #toLeader). */
  #leaderStub: DurableObjectStub<Room> | undefined;
  /**
   * Open connections per user on this object, kept as they open and depart: a socket its client
   * closed leaves getWebSockets() before its close event is handled, and until then it still
   * counts (so a call in between sees no leave that has not been told). Undefined after a wake:
   * counted again from the sockets.
   */
  #perUser: Map<string, number> | undefined;
  /** The sockets #perUser counts. */
  #counted = new WeakSet<WebSocket>();
  /** As a leader with shards: who is connected on which shard (made on first use). */
  #shardMembersRecord: ShardMembers | undefined;
  /** As a leader: reports received per shard, so a correction read before one of them is dropped. */
  readonly #reports = new Map<string, number>();
  /** As a leader: shards whose members are being read to correct the record. */
  readonly #correcting = new Set<string>();

  constructor(ctx: DurableObjectState, vars: RoomEnv) {
    super(ctx, vars);
    this.#settings = readSettings(vars);
    this.#log = new RoomLog(ctx.storage.sql, {
      maxCount: this.#settings.historyMaxCount,
      maxAgeMs: this.#settings.historyMaxAgeMs,
    });
    const access = this.#settings.anonymousAccess;
    this.#connections = new Connections(ctx, (att) =>
      principal(anonymous(access, "unknown"), att.room, "unknown", att.user),
    );
    this.#flow = new Flow(this.#settings.subscriberMaxBehindBytes);
    this.#rate = new RateLimiter(this.#settings.publishRatePerSecond);
    this.#userRate = new UserRateLimiter(this.#settings.userPublishRatePerSecond);
    // A client's liveness check is answered by the runtime, even while the room hibernates.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_TEXT, HEARTBEAT_TEXT));
    // The shard set keeps one stub per shard and makes a new one after a failure.
    this.#shards = new ShardSet(
      ctx.storage.sql,
      (name, region) => this.#namespace().getByName(name, hintOf(region)),
      (shard) => this.#sync(shard),
      (shard, r, stub) => this.#shardAnswered(shard, r, stub),
    );
    // Events stored before a restart may not have reached the shards: each one checks its place
    // against the log (and fills what it missed). Cheap: one call per shard per wake-up.
    if (this.#shards.size > 0) this.#shards.push((shard) => this.#sync(shard));
  }

  /**
   * Subscribes a WebSocket. The URL is built by the Worker (edge/room-client.ts) from checked
   * values; clients never reach it directly.
   */
  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return errorResponse(new RelayError("upgrade_required", "expected a WebSocket upgrade"));
    }
    const q = readQuery(new URL(request.url).searchParams);
    const offer = formatFromProtocols(request.headers.get("Sec-WebSocket-Protocol"));
    const format = q.format ?? offer.format;
    const headers: HeadersInit = !q.format && offer.protocol ? { "Sec-WebSocket-Protocol": offer.protocol } : {};
    const att: Attachment = {
      room: q.room,
      via: q.via,
      format,
      connectedAtMs: Date.now(),
      who: q.who,
      ...(q.presence ? { presence: true } : {}),
      ...(q.shard !== undefined ? { shard: q.shard } : {}),
    };
    // A bridge answers its own client in its transport's terms; a browser socket gets a close code it can read.
    const refuse = (err: RelayError) =>
      q.format ? errorResponse(err) : closedUpgrade(CODES[err.code].close, err.message, offer.protocol);
    const shardSize = this.#settings.roomShardSubscribers;
    const here = this.#connections.count();
    if (q.shard === undefined && here + this.#shards.subscribers() >= this.#settings.maxConnectionsPerRoom) {
      return refuse(new RelayError("room_full", "the room has as many connections as it allows"));
    }
    if (q.shard === undefined && shardSize > 0 && here >= shardSize) {
      // Past its share, the leader places new subscribers on a shard near them; the Worker opens
      // them there (edge/room-client.ts).
      const shard = this.#shards.place(q.room, q.region, shardSize, Date.now());
      return Response.json({ shard, region: q.region }, { status: 307 });
    }
    if (this.#connections.countOf(q.who.key) >= this.#settings.maxConnectionsPerUser) {
      return refuse(
        new RelayError(
          "too_many_connections",
          `this user has ${this.#settings.maxConnectionsPerUser} connections to the room already`,
        ),
      );
    }
    const { 0: client, 1: server } = new WebSocketPair();
    const upgraded = new Response(null, { status: 101, webSocket: client, headers });
    if (q.shard !== undefined)
      return this.#subscribeOnShard({ ...q, shard: q.shard, format }, server, att, upgraded, refuse);

    // Synchronous from here to the return: no publish can interleave, so the replay and the live
    // stream meet without a gap or a duplicate. Events still waiting for their fan-out go out
    // first: they are in the log, so this socket gets them in its replay or not at all.
    this.#flush();
    const open = opening(
      this.#log,
      { ...q, format, nowMs: Date.now(), replayMaxBytes: this.#settings.replayMaxBytes },
      (e) => this.#event(q.room, e),
    );
    this.#admit(server, att, open);
    return upgraded;
  }

  /**
   * Starts a subscriber at the end of its opening: a subscriber from then on, or, when its replay
   * was paused, a socket that gets its part and is closed.
   */
  #admit(server: WebSocket, att: Attachment, open: Opening): void {
    const format = att.format;
    if (open.paused) {
      // Not a subscriber: a plain (not hibernatable) socket that gets its part and is closed. A
      // hibernatable socket closed by the room lingers ~10 s before the client sees the close.
      server.accept();
      for (const f of open.frames) send(server, f);
      closeSocket(
        server,
        CODES.replay_paused.close,
        `replay paused after ${open.bytes} bytes: resume after the last seq`,
      );
      return;
    }
    const user = att.who.user;
    const perUser = this.#userCounts();
    const joins = (perUser.get(user) ?? 0) === 0;
    const elsewhere = joins && this.#onShards(user);
    this.#connections.accept(server, att);
    perUser.set(user, (perUser.get(user) ?? 0) + 1);
    this.#counted.add(server);
    for (const f of open.frames) this.#deliver(server, format, f);
    // The members now (itself included), then what changes: its own join goes to the others. A
    // shard reports a user's first connection to its leader, which tells the whole room.
    if (att.presence) this.#sendSnapshot(server, att);
    if (joins && att.shard !== undefined) this.#report(att.room, att.shard, "join", this.#localMember(user));
    else if (joins && !elsewhere) this.#announce(att.room, "join", this.#localMember(user));
    this.#armExpiry(att.who.expMs);
  }

  /**
   * A new presence subscriber's snapshot: the members now. Of this object alone when it is a
   * room without shards (at once, before any later join or leave); else of the whole room, asked
   * of its leader and shards.
   */
  #sendSnapshot(ws: WebSocket, att: Attachment): void {
    const sendAll = (list: MemberData[]) => {
      const now = Date.now();
      const events = list.map((m) => new EncodedEvent(this.#presenceEvent(att.room, "join", m, now)));
      for (const f of encodeEvents(att.format, events)) this.#deliver(ws, att.format, f);
    };
    if (this.#upstream === undefined && this.#shards.size === 0) {
      sendAll(this.#localMembers());
      return;
    }
    const all = this.#upstream ? this.#toLeader(att.room, (l) => l.presence()) : this.presence();
    all.then(sendAll, (e) => console.warn("presence snapshot failed", e));
  }

  /**
   * A subscriber the leader placed on this object, a fan-out shard: the leader computes its
   * opening at the end of its log and sends it in this shard's stream of pushes, so the
   * subscriber starts exactly there (room/upstream.ts). Until then it is not a subscriber.
   */
  async #subscribeOnShard(
    q: SubscribeQuery & { shard: string; format: Format },
    server: WebSocket,
    att: Attachment,
    upgraded: Response,
    refuse: (err: RelayError) => Response,
  ): Promise<Response> {
    this.#asShard(q.shard);
    const token = crypto.randomUUID();
    let settle: (ok: boolean) => void = () => {};
    const opened = new Promise<boolean>((resolve) => {
      settle = resolve;
    });
    // A paused replay's socket is no subscriber: it gets its part when the upgrade is answered
    // (closed earlier, its frames would be lost).
    let paused: Opening | undefined;
    this.#openings.set(token, (o, late) => {
      const open = { frames: o.frames, paused: o.paused, bytes: o.bytes };
      if (!late && o.paused) paused = open;
      else if (!late) this.#admit(server, att, open);
      settle(!late);
    });
    const timer = setTimeout(() => {
      this.#openings.delete(token);
      settle(false);
    }, SHARD_OPENING_TIMEOUT_MS);
    try {
      const refused = await this.#toLeader(q.room, (l) => l.openOnShard(q, token));
      if (refused) throw new RelayError(refused.code, refused.message);
      if (!(await opened)) throw new RelayError("going_away", "the shard could not open this subscription: retry");
      if (paused) this.#admit(server, att, paused);
      return upgraded;
    } catch (e) {
      return refuse(RelayError.from(e));
    } finally {
      clearTimeout(timer);
      this.#openings.delete(token);
    }
  }

  /**
   * Opens a subscriber on one of this room's shards (RPC from the shard): its opening (subscribed,
   * gap, replay) as of the end of the log, sent in that shard's order of pushes, after every
   * event before it.
   */
  openOnShard(q: SubscribeQuery & { shard: string; format: Format }, token: string): ErrorData | null {
    const s = parseShardName(q.shard);
    if (!s || s.room !== q.room) return { code: "invalid_argument", message: `${q.shard} is not a shard of ${q.room}` };
    this.#shards.keep(q.shard, s.region, s.index, Date.now());
    this.#flush();
    const open = opening(this.#log, { ...q, nowMs: Date.now(), replayMaxBytes: this.#settings.replayMaxBytes }, (e) =>
      this.#event(q.room, e),
    );
    const push = this.#sync(q.shard, [{ token, ...open }]);
    this.#shards.push(() => push, q.shard);
    return null;
  }

  /**
   * A fan-out from the room's leader (RPC; this object is one of its shards): applied in offset
   * order. Answers how many subscribers the shard has, so the leader can retire it when empty.
   */
  push(p: ShardPush): PushResult {
    const started = performance.now();
    this.#asShard(p.shard).receive(p);
    this.#fanOutUs += (performance.now() - started) * 1000;
    return { subscribers: this.#connections.count() + this.#openings.size, members: this.#userCounts().size };
  }

  /**
   * A user's first connection on one of this room's shards opened, or their last one there closed
   * (RPC from the shard, in the order it made its calls): the room hears of it when that makes the
   * user join or leave the whole room.
   */
  memberChanged(shard: string, kind: "join" | "leave", member: MemberData): void {
    const s = parseShardName(shard);
    if (!s) return;
    this.#reports.set(shard, (this.#reports.get(shard) ?? 0) + 1);
    const before = this.#present(member.user);
    this.#shardMembers().set(shard, member.user, kind === "join");
    if (before !== this.#present(member.user)) this.#announce(s.room, kind, member);
  }

  /**
   * A shard's push answer: when the users it holds are not as many as recorded (it restarted and
   * lost its sockets, or a report was lost), the record is corrected from the shard's members.
   */
  #shardAnswered(shard: string, r: PushResult, stub: DurableObjectStub<Room>): void {
    if (r.members === this.#shardMembers().count(shard) || this.#correcting.has(shard)) return;
    if (r.members === 0) {
      this.#correct(shard, []);
      return;
    }
    this.#correcting.add(shard);
    const reports = this.#reports.get(shard) ?? 0;
    stub
      .presence()
      .then(
        // A report that came meanwhile is newer than this list: the next answer says whether to look again.
        (list) => (this.#reports.get(shard) ?? 0) === reports && this.#correct(shard, list),
        (e) => console.warn(`could not read the members of shard ${shard}`, e),
      )
      .finally(() => this.#correcting.delete(shard));
  }

  /** Makes `list` the record of `shard`'s members, and tells the room of the users that joined or left by it. */
  #correct(shard: string, list: readonly MemberData[]): void {
    const room = parseShardName(shard)?.room;
    if (room === undefined) return;
    const record = this.#shardMembers();
    const { added, removed } = record.replace(
      shard,
      list.map((m) => m.user),
    );
    const joined = new Set(added);
    for (const m of list) {
      if (!joined.has(m.user)) continue;
      const before = this.#userCounts().has(m.user) || record.elsewhere(m.user, shard);
      if (!before) this.#announce(room, "join", m);
    }
    for (const user of removed) if (!this.#present(user)) this.#announce(room, "leave", memberOf(user, []));
  }

  /** Whether `user` is connected anywhere in the room, as this leader knows. */
  #present(user: string): boolean {
    return this.#userCounts().has(user) || this.#onShards(user);
  }

  /** Connections per user on this object (counted anew from its open sockets after a wake). */
  #userCounts(): Map<string, number> {
    if (!this.#perUser) {
      const perUser = new Map<string, number>();
      this.#counted = new WeakSet();
      for (const ws of this.#connections.open()) {
        if (this.#departed.has(ws)) continue;
        const user = this.#connections.get(ws).who.user;
        perUser.set(user, (perUser.get(user) ?? 0) + 1);
        this.#counted.add(ws);
      }
      this.#perUser = perUser;
    }
    return this.#perUser;
  }

  /** Whether `user` is connected on one of this leader's shards (a shard has none). */
  #onShards(user: string): boolean {
    return this.#shards.size > 0 && this.#shardMembers().has(user);
  }

  #shardMembers(): ShardMembers {
    this.#shardMembersRecord ??= new ShardMembers(this.ctx.storage.sql);
    return this.#shardMembersRecord;
  }

  /** As a shard: tells the leader that a user's first connection here opened, or their last one closed. */
  #report(room: string, shard: string, kind: "join" | "leave", member: MemberData): void {
    this.#toLeader(room, (l) => l.memberChanged(shard, kind, member)).catch((e) =>
      console.warn(`could not tell the leader of a ${kind}`, e),
    );
  }

  /** This object as the fan-out shard `name`: its upstream, made on first use. */
  #asShard(name: string): Upstream {
    if (this.#upstream) return this.#upstream;
    const room = parseShardName(name)?.room ?? "";
    this.#upstream = new Upstream({
      fanOut: (events) => this.#fanOut(events.map((e) => new EncodedEvent(e))),
      open: (o, late) => this.#openings.get(o.token)?.(o, late),
      read: async (after) => {
        const page: Result<HistoryPage> = await this.#toLeader(room, async (l) => await l.history(room, after, 0));
        if (!page.ok) throw new RelayError(page.error.code, page.error.message);
        return { events: page.value.events, epoch: page.value.epoch };
      },
      resetAll: (reason) => {
        for (const ws of this.#connections.open()) this.#close(ws, "going_away", reason);
      },
      announce: (events) => {
        for (const e of events) this.#tellPresence(new EncodedEvent(e));
      },
    });
    return this.#upstream;
  }

  /** A push with no events: the end of the log (a shard behind it fills the gap), and openings. */
  #sync(shard: string, openings?: ShardOpening[]): ShardPush {
    return { shard, epoch: this.#log.epoch, from: this.#log.lastSeq + 1, events: [], openings };
  }

  #namespace(): DurableObjectNamespace<Room> {
    if (!this.env.ROOM) throw new RelayError("internal", "the ROOM binding is missing");
    return this.env.ROOM;
  }

  /**
   * Calls the room's leader (this object is one of its shards) through one stub, so that calls
   * arrive in the order made; a stub that failed (the leader restarted) is replaced for the next call.
   */
  async #toLeader<T>(room: string, call: (leader: DurableObjectStub<Room>) => Promise<T>): Promise<T> {
    let stub = this.#leaderStub;
    if (!stub) {
      stub = this.#namespace().getByName(room);
      this.#leaderStub = stub;
    }
    try {
      return await call(stub);
    } catch (e) {
      if (this.#leaderStub === stub) this.#leaderStub = undefined;
      throw e;
    }
  }

  /** Publishes one message for `who` (RPC from the Worker's HTTP and Connect routes, which checked its right). */
  async publish(room: string, input: PublishInput, who: Principal): Promise<Result<PublishResult>> {
    try {
      const { event, duplicate } = await this.#inOrder(who, () => this.#publish(room, input, who));
      // Answered once its row is written: the output gate then holds the answer until it is committed.
      if (this.#log.unwritten > 0) await this.#nextWrite();
      return { ok: true, value: { event: event.data, duplicate } };
    } catch (e) {
      return { ok: false, error: errorData(e) };
    }
  }

  /**
   * Ends every connection of `user` in the room, on every transport, with `removed` (RPC for
   * POST /rooms/:room/disconnect); returns how many.
   */
  async disconnectUser(user: string): Promise<number> {
    let n = 0;
    for (const ws of this.#connections.open()) {
      if (this.#connections.get(ws).who.user !== user) continue;
      this.#close(ws, "removed", "removed by an admin");
      n++;
    }
    const onShards = await this.#askShards((s) => s.disconnectUser(user));
    return onShards.reduce((a, b) => a + b, n);
  }

  /** Ends the connections whose token has expired, and sets the alarm for the next expiry. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    let next = 0;
    for (const ws of this.#connections.open()) {
      const exp = this.#connections.get(ws).who.expMs;
      if (exp === 0) continue;
      if (exp <= now) this.#close(ws, "token_expired", "token expired: reconnect with a new token");
      else next = next === 0 ? exp : Math.min(next, exp);
    }
    if (next !== 0) this.#armExpiry(next);
  }

  /**
   * Reads a page of the log (RPC): at most `limit` events (HISTORY_PAGE_LIMIT when 0 or more) and
   * about REPLAY_MAX_BYTES, at least one; `hasMore` says whether another page follows.
   */
  history(room: string, since: number, limit: number): Result<HistoryPage> {
    const max = this.#settings.historyPageLimit;
    const n = limit > 0 ? Math.min(limit, max) : max;
    const now = Date.now();
    const events: EventData[] = [];
    let bytes = 0;
    let hasMore = false;
    for (const row of this.#log.iterate(since, now, n + 1)) {
      bytes += utf8Length(row.text) + 256;
      if (events.length === n || (events.length > 0 && bytes > this.#settings.replayMaxBytes)) {
        hasMore = true;
        break;
      }
      events.push(this.#event(room, row));
    }
    return { ok: true, value: { events, epoch: this.#log.epoch, ...this.#range(now), hasMore } };
  }

  /**
   * Who is connected now, one member per user with their connections on every transport, on this
   * object and its shards (RPC).
   */
  async presence(): Promise<MemberData[]> {
    const onShards = await this.#askShards((s) => s.presence());
    return mergeMembers([this.#localMembers(), ...onShards]);
  }

  /**
   * Asks every shard (stats, presence, an admin's disconnect); a shard that cannot answer (it is
   * restarting: its subscribers are resuming elsewhere) is left out rather than failing the call.
   */
  async #askShards<T>(ask: (shard: DurableObjectStub<Room>) => Promise<T>): Promise<T[]> {
    const answers = await Promise.all(
      this.#shards.stubs().map((s) =>
        ask(s).then(
          (value) => ({ value }),
          (e) => {
            console.warn("a shard did not answer", e);
            return undefined;
          },
        ),
      ),
    );
    return answers.flatMap((a) => (a ? [a.value] : []));
  }

  /** Who is connected to this object alone. */
  #localMembers(): MemberData[] {
    return members(this.#connections.attachments());
  }

  /** The room's counters (RPC): connections on this object and its shards; the rest, this object's. */
  async stats(): Promise<RoomStats> {
    const connections: Record<string, number> = {};
    for (const a of this.#connections.attachments()) connections[a.via] = (connections[a.via] ?? 0) + 1;
    for (const s of await this.#askShards((s) => s.stats())) {
      for (const [via, n] of Object.entries(s.connections)) connections[via] = (connections[via] ?? 0) + n;
    }
    return {
      epoch: this.#log.epoch,
      ...this.#range(Date.now()),
      connections,
      objectStartedAtMs: this.#startedAtMs,
      flushes: this.#flushes,
      flushedEvents: this.#flushedEvents,
      slowDisconnects: this.#slowDisconnects,
      shards: this.#shards.size,
      fanOutUs: Math.round(this.#fanOutUs),
    };
  }

  override webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): void {
    const att = this.#connections.get(ws);
    const size =
      typeof message === "string" ? textFrameBytes(message, this.#settings.maxFrameBytes) : message.byteLength;
    if (size > this.#settings.maxFrameBytes) {
      this.#close(ws, "too_large", `frame larger than ${this.#settings.maxFrameBytes} bytes`);
      return;
    }
    // workerd hands a text frame that is not valid UTF-8 over with U+FFFD in place of the bad
    // bytes, and gives no other sign. RFC 6455 says to fail such a connection with 1007; a client
    // that means U+FFFD can send it escaped ("\ufffd") in relay.v1.json.
    if (typeof message === "string" && message.includes(REPLACEMENT)) {
      this.#close(ws, "invalid_encoding", "text frame is not valid UTF-8");
      return;
    }
    if (att.format === "plain") this.#flow.confirmAll(ws);
    let id = "";
    try {
      const m = decodeClientFrame(att.format, message);
      if ("pong" in m) {
        this.#flow.pong(ws, m.pong);
        return;
      }
      if ("receipt" in m) return;
      if ("heartbeat" in m) {
        send(ws, encodeHeartbeat(att.format));
        return;
      }
      if ("refresh" in m) {
        void this.#refresh(ws, att, m.refresh);
        return;
      }
      id = typeof m.publish.id === "string" ? m.publish.id : "";
      if (!att.who.canPublish) {
        throw new RelayError("permission_denied", `this connection may not publish in room ${att.room}`);
      }
      if (!this.#rate.take(ws, Date.now())) {
        throw new RelayError("rate_limited", `more than ${this.#rate.ratePerSecond} publishes per second`);
      }
      const publish = m.publish;
      const done =
        att.shard !== undefined
          ? this.#publishOnLeader(att, publish)
          : this.#inOrder(att.who, () => this.#publish(att.room, publish, att.who));
      if (done instanceof Promise)
        done.then(
          (r) => this.#acked(ws, att, r, id),
          (e) => this.#refused(ws, att, e, id),
        );
      else this.#acked(ws, att, done, id);
    } catch (e) {
      this.#refused(ws, att, e, id);
    }
  }

  /**
   * A publish on a shard's socket goes to the leader, the room's only writer: one stub, so one
   * socket's publishes arrive in the order sent. Its event comes back with the leader's fan-out.
   */
  async #publishOnLeader(att: Attachment, input: PublishInput): Promise<{ event: EncodedEvent; duplicate: boolean }> {
    const r: Result<PublishResult> = await this.#toLeader(
      att.room,
      async (l) => await l.publish(att.room, input, att.who),
    );
    if (!r.ok) throw new RelayError(r.error.code, r.error.message);
    return { event: new EncodedEvent(r.value.event), duplicate: r.value.duplicate };
  }

  /**
   * Queues the ack of a stored publish for the next flush, which writes the log first: the
   * publishes that arrive meanwhile share its commit.
   */
  #acked(ws: WebSocket, att: Attachment, result: { event: EncodedEvent; duplicate: boolean }, id: string): void {
    // Plain mode has no ack: the echo of the event is its answer, so it goes out now (with
    // whatever else is waiting, in order) instead of at the next timer tick. A plain publisher
    // confirms what it got by sending, so an echo held back would count as unread.
    if (att.format === "plain") {
      this.#flush();
      return;
    }
    const ack = encodeAck(att.format, result.event, result.duplicate);
    if (ack === undefined) return;
    this.#acks.push({ ws, format: att.format, frame: ack, id });
    // A few acks share a commit; more would hold the first ones back for little gain: a flush now
    // lets this commit run while the next frames arrive (a publisher's window keeps coming).
    if (this.#acks.length >= ACKS_PER_COMMIT) this.#commit();
    else this.#scheduleFlush();
  }

  /**
   * A publish refused: an error frame naming its id, and the socket stays open (a text over
   * MAX_MESSAGE_BYTES too: its frame was within the frame limit, so the connection is sound; a frame
   * over that limit closes it with 1009 in webSocketMessage).
   */
  #refused(ws: WebSocket, att: Attachment, e: unknown, id: string): void {
    this.#deliver(ws, att.format, encodeError(att.format, errorData(e), id));
  }

  /**
   * A new token for a connection (docs/auth.md): for the same `sub`, still allowed to subscribe
   * here. The connection then lives until the new expiry and has the new token's rights; a token
   * that fails changes nothing.
   */
  async #refresh(ws: WebSocket, att: Attachment, token: string): Promise<void> {
    try {
      const who = await verifyToken(token, this.#settings);
      if (att.who.anonymous || who.sub !== att.who.owner) {
        throw new RelayError("permission_denied", "a refresh must carry a token for the connection's own sub");
      }
      if (!can(who, "subscribe", att.room)) {
        throw new RelayError("permission_denied", `the new token does not allow subscribe in room ${att.room}`);
      }
      const next: Attachment = { ...att, who: principal(who, att.room, att.who.address, att.who.user) };
      this.#connections.update(ws, next);
      this.#armExpiry(next.who.expMs);
      this.#deliver(ws, att.format, encodeRefreshed(att.format, next.who.expMs));
    } catch (e) {
      this.#deliver(ws, att.format, encodeError(att.format, errorData(e)));
    }
  }

  /** Takes one publish from the user's budget in this room (all their connections and transports). */
  #takeUserRate(who: Principal): void {
    if (!this.#userRate.take(who.key, Date.now())) {
      throw new RelayError(
        "rate_limited",
        `more than ${this.#userRate.ratePerSecond} publishes per second by this user`,
      );
    }
  }

  /**
   * Runs a publish now, or, when it is an anonymous client's first into this room (or one is
   * waiting for that), once the NEW_ROOMS rate limit has allowed the room: in arrival order, so a
   * socket's frames are still stored in the order sent.
   */
  #inOrder<T>(who: Principal, fn: () => T): T | Promise<T> {
    if (this.#gate === undefined && !this.#needsPermit(who)) return fn();
    const run = async () => {
      if (this.#needsPermit(who)) await this.#permit(who);
      return fn();
    };
    const result = (this.#gate ?? Promise.resolve()).then(run);
    const gate = result.catch(() => undefined);
    this.#gate = gate;
    gate.then(() => {
      if (this.#gate === gate) this.#gate = undefined;
    });
    return result;
  }

  #needsPermit(who: Principal): boolean {
    return who.anonymous && this.#settings.limitAnonymousNewRooms && !!this.env.NEW_ROOMS && this.#log.lastSeq === 0;
  }

  async #permit(who: Principal): Promise<void> {
    const limiter = this.env.NEW_ROOMS as RateLimit;
    const { success } = await limiter.limit({ key: who.address });
    if (!success) {
      throw new RelayError(
        "rate_limited",
        "anonymous clients may create only a few new rooms a minute (publish with a token, or wait)",
      );
    }
  }

  /** Makes sure the alarm rings by `expMs` (0: never), when a connection's token expires. */
  #armExpiry(expMs: number): void {
    if (expMs === 0) return;
    const storage = this.ctx.storage;
    this.#alarmChain = this.#alarmChain
      .then(async () => {
        const current = await storage.getAlarm();
        if (current === null || current > expMs) await storage.setAlarm(expMs);
      })
      .catch((e) => console.error("could not set the expiry alarm", e));
  }

  override webSocketClose(ws: WebSocket, code: number, reason: string): void {
    // Answer the close ourselves; otherwise the peer sees an unclean 1006 ~10 s later (docs/runtime-notes.md).
    closeSocket(ws, closeReplyCode(code), code === closeReplyCode(code) ? reason : "invalid close code");
    this.#departs(ws);
  }

  override webSocketError(ws: WebSocket, error: unknown): void {
    console.warn("room socket error", error);
    this.#close(ws, "internal", "socket error");
  }

  /**
   * A connection has ended (its client closed it, or the room did): when it was its user's last,
   * the user leaves. A WebSocket client's close arrives at once; an SSE or Connect client's when
   * the Worker notices it has gone, at its next write (a heartbeat at the latest).
   */
  #departs(ws: WebSocket): void {
    if (this.#departed.has(ws)) return;
    const perUser = this.#userCounts();
    this.#departed.add(ws);
    const { room, who, shard } = this.#connections.get(ws);
    // A socket closed by its client before the count was made again is not in it.
    const others = (perUser.get(who.user) ?? 0) - (this.#counted.has(ws) ? 1 : 0);
    if (others > 0) perUser.set(who.user, others);
    else perUser.delete(who.user);
    if (others > 0) return;
    const left = memberOf(who.user, []);
    // A shard's socket knows its shard (after hibernation the object may not have heard yet).
    if (shard !== undefined) this.#report(room, shard, "leave", left);
    else if (!this.#onShards(who.user)) this.#announce(room, "leave", left);
  }

  /** `user` as a member, from their connections to this object still open. */
  #localMember(user: string): MemberData {
    const open = this.#connections.ofUser(user).filter((ws) => !this.#departed.has(ws));
    return memberOf(
      user,
      open.map((ws) => this.#connections.get(ws)),
    );
  }

  /**
   * Tells the room that `member` joined or left it: this object's presence subscribers, and (a
   * leader) every shard's, in the shards' stream of pushes.
   */
  #announce(room: string, kind: "join" | "leave", member: MemberData): void {
    const event = new EncodedEvent(this.#presenceEvent(room, kind, member, Date.now()));
    this.#tellPresence(event);
    if (this.#shards.size === 0) return;
    // After the events stored so far, so the push starts where the shards are.
    this.#flush();
    this.#shards.push((shard) => ({ ...this.#sync(shard), presence: [event.data] }));
  }

  /** Sends a join or leave to this object's presence subscribers, but the user's own connections. */
  #tellPresence(event: EncodedEvent): void {
    const user = event.data.user;
    for (const format of FORMATS) {
      const sockets = this.#connections.presenceOf(format).filter((ws) => this.#connections.get(ws).who.user !== user);
      if (sockets.length === 0) continue;
      for (const frame of encodeEvents(format, [event])) {
        for (const ws of sockets) this.#deliver(ws, format, frame);
      }
    }
  }

  #presenceEvent(room: string, kind: "join" | "leave", member: MemberData, nowMs: number): EventData {
    return { room, seq: 0, epoch: this.#log.epoch, id: "", user: member.user, timeMs: nowMs, kind, text: "", member };
  }

  /** Every publish, from any transport: the user's rate, the rules, the log, the fan-out. */
  #publish(room: string, input: PublishInput, who: Principal): { event: EncodedEvent; duplicate: boolean } {
    this.#takeUserRate(who);
    const valid = parsePublish(input, this.#settings.maxMessageBytes, { name: who.user, fixed: who.userFixed });
    const { event, duplicate } = this.#log.appendLater({ ...valid, owner: who.owner }, Date.now());
    const e = new EncodedEvent(this.#event(room, event));
    // A retry is answered with the original event and not fanned out again.
    if (!duplicate) this.#enqueue(e);
    return { event: e, duplicate };
  }

  /**
   * Queues a stored event for the next fan-out, which runs on the next timer tick: the runtime
   * runs it once the events already waiting for this object (a burst of frames, other publishers)
   * are handled, so they share it. A full batch goes out at once, so a steady stream of publishes
   * that keeps the timer from running cannot hold events back.
   */
  #enqueue(e: EncodedEvent): void {
    if (!this.#pending.fits(e)) this.#flush();
    this.#pending.add(e);
    this.#scheduleFlush();
  }

  #scheduleFlush(): void {
    if (this.#flushTimer !== undefined) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush();
    }, 0);
  }

  /** Settles once the next flush has written the log (or failed to). */
  #nextWrite(): Promise<void> {
    if (!this.#written) {
      let resolve = () => {};
      let reject: (e: unknown) => void = () => {};
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#written = { promise, resolve, reject };
    }
    this.#scheduleFlush();
    return this.#written.promise;
  }

  /**
   * Fans out the events stored since the last flush: per format, one frame per subscriber for all
   * of them (plain mode: one per event), each event encoded once per encoding. A frame costs the
   * runtime about as much to send as one event, so under load this multiplies what a room can
   * deliver, and an idle room still sends each event at once. Durability is unchanged: the output
   * gate holds every frame until the events are written. Acks do not wait for this: a publisher
   * can get its ack before the frame that carries its event.
   */
  #flush(): void {
    if (!this.#commit()) {
      // Events written by an earlier commit are still waiting: they go out at the next tick.
      if (this.#pending.length > 0) this.#scheduleFlush();
      return;
    }
    const events = this.#pending.take();
    if (events.length === 0) return;
    const started = performance.now();
    this.#fanOut(events);
    if (this.#shards.size > 0) {
      const data = events.map((e) => e.data);
      this.#shards.push((shard) => ({ shard, epoch: this.#log.epoch, from: data[0].seq, events: data }));
    }
    this.#fanOutUs += (performance.now() - started) * 1000;
  }

  /**
   * Writes the rows of the publishes waiting, in one commit, and sends their acks (the output gate
   * holds every frame sent after the write until the commit is done); their events wait for the
   * fan-out at the next tick, so that acks sent early (8 waiting) do not cut the batch short.
   * False when the write failed: those publishes are refused, and their events dropped.
   */
  #commit(): boolean {
    const acks = this.#acks;
    const written = this.#written;
    this.#acks = [];
    this.#written = undefined;
    try {
      this.#log.write();
    } catch (e) {
      // The write is all or none: the rows it held are gone, and so are their events (the ones
      // after the log's end); events written by an earlier commit still go out.
      this.#pending.dropAfter(this.#log.lastSeq);
      for (const a of acks) this.#deliver(a.ws, a.format, encodeError(a.format, errorData(e), a.id));
      written?.reject(e);
      return false;
    }
    written?.resolve();
    for (const a of acks) this.#deliver(a.ws, a.format, a.frame);
    return true;
  }

  /** Sends events to this object's subscribers. */
  #fanOut(events: EncodedEvent[]): void {
    this.#flushes++;
    this.#flushedEvents += events.length;
    for (const format of FORMATS) {
      const sockets = this.#connections.ofFormat(format);
      if (sockets.length === 0) continue;
      for (const frame of encodeEvents(format, events)) {
        for (const ws of sockets) this.#deliver(ws, format, frame);
      }
    }
  }

  /** Sends a frame within the subscriber's flow-control bound (flow.ts); past it, closes it as too slow. */
  #deliver(ws: WebSocket, format: Format, frame: Frame): void {
    const v = this.#flow.send(ws, frameSize(frame), format !== "plain");
    if (!this.#verdict(ws, format, v)) return;
    send(ws, frame);
    if (v.ok && v.ping !== undefined) send(ws, encodePing(format, v.ping) as Frame);
  }

  /** Acts on a flow-control verdict: closes a subscriber too far behind; true when sending may go on. */
  #verdict(ws: WebSocket, format: Format, v: Verdict): boolean {
    if (!v.ok) {
      if (v.first) {
        this.#slowDisconnects++;
        this.#close(
          ws,
          "too_slow",
          `more than ${this.#flow.maxBehind} bytes unread: resume after the last seq received`,
        );
      }
      return false;
    }
    // Over the bound within its grace: if the room has nothing more to send, it must still come back.
    if (v.recheckMs !== undefined) {
      setTimeout(() => this.#verdict(ws, format, this.#flow.check(ws, format !== "plain")), v.recheckMs);
    }
    return true;
  }

  #close(ws: WebSocket, code: ErrorCode, reason: string): void {
    closeSocket(ws, CODES[code].close, reason);
    this.#departs(ws);
  }

  #range(nowMs: number): { firstSeq: number; lastSeq: number } {
    const first = this.#log.firstAvailable(nowMs);
    const lastSeq = this.#log.lastSeq;
    return { firstSeq: first > lastSeq ? 0 : first, lastSeq };
  }

  #event(room: string, e: StoredEvent): EventData {
    return { room, epoch: this.#log.epoch, kind: "message", ...e };
  }
}

/** A Durable Object location hint for a region ("any": none). */
function hintOf(region: Region): DurableObjectNamespaceGetDurableObjectOptions | undefined {
  return region === "any" ? undefined : { locationHint: region };
}

/** The subscribe URL's query. Built by the Worker from checked values, so only read here. */
function readQuery(q: URLSearchParams): SubscribeQuery {
  const since = q.get("since");
  const format = q.get("format");
  const region = q.get("region");
  return {
    room: q.get("room") ?? "",
    via: q.get("via") ?? "unknown",
    who: JSON.parse(q.get("who") ?? "null") as Principal,
    since: since === null ? undefined : Number(since),
    epoch: q.get("epoch") ?? undefined,
    format: isFormat(format) ? format : undefined,
    presence: q.get("presence") === "1",
    region: isRegion(region) ? region : "any",
    shard: q.get("shard") ?? undefined,
  };
}

function send(ws: WebSocket, frame: Frame): void {
  try {
    ws.send(frame);
  } catch {
    // The socket is closing; its webSocketClose cleans up.
  }
}

/** A text frame's UTF-8 size, measured only when its length in UTF-16 units leaves it in doubt. */
function textFrameBytes(s: string, max: number): number {
  return s.length > max || s.length * 3 <= max ? s.length : utf8Length(s);
}

function errorData(e: unknown): ErrorData {
  const err = RelayError.from(e);
  if (err.code === "internal") console.error("room error", e);
  return { code: err.code, message: err.message };
}

function errorResponse(err: RelayError): Response {
  return Response.json(err.toJSON(), { status: err.http });
}
