/**
 * The leader's side of fan-out shards. Past ROOM_SHARD_SUBSCRIBERS subscribers, a room's new
 * subscribers are placed on shards: further Room objects named `<room>/<region>/<n>` (a name no
 * room can have: room names hold no "/"), each created near its region's clients. The room's own
 * object, the leader, stays the only writer (log, order, acks, idempotency); a shard holds no log.
 *
 * Each shard's subscription to the leader is durable and resumable by offset: the leader keeps the
 * list of its shards in SQLite and pushes every fan-out to each of them by RPC, as events with
 * their offsets (see {@link ShardPush}); a shard that finds a gap fills it from the log (see
 * upstream.ts). Not a socket: an object that opens a WebSocket can never hibernate (only sockets an
 * object accepts can: cloudflare/workerd#4864), and an RPC from the leader wakes a hibernated
 * shard like a client frame does. So an idle room and its shards all hibernate.
 *
 * The leader's cost per message grows with its shards (one RPC each), not with their subscribers.
 */
import type { EventData } from "../protocol/events";
import type { Frame } from "../protocol/formats";

/** One fan-out, or a sync, from the leader to one shard. */
export interface ShardPush {
  /** The shard's object name (it says which room: see parseShardName). */
  shard: string;
  epoch: string;
  /** The offset of the first event: the shard must be at `from - 1` (else it fills the gap first). */
  from: number;
  /** Stored events with offsets `from`, `from + 1`, ...; none for a sync or an opening. */
  events: EventData[];
  /** Subscriptions opening at offset `from - 1`, after the events before them (see Upstream.open). */
  openings?: ShardOpening[];
  /** Presence events (a user's first connection in the room, or last), after all of the above. */
  presence?: EventData[];
}

/** A new subscriber's opening frames, computed by the leader at an offset, delivered in the push order. */
export interface ShardOpening {
  token: string;
  frames: Frame[];
  /** The replay stopped at REPLAY_MAX_BYTES: the subscriber gets `frames` and is closed (replay_paused). */
  paused: boolean;
  bytes: number;
}

/** What the leader gets back from a push: the shard's open subscribers, and how many users they are. */
export type PushResult = { subscribers: number; members: number };

/** What the leader may call on a shard. */
export interface ShardStub {
  push(p: ShardPush): Promise<PushResult>;
}

/** The regions shards are placed in: Durable Object location hints, or "any" where the client's is unknown. */
export const REGIONS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me", "any"] as const;
export type Region = (typeof REGIONS)[number];

export const isRegion = (s: unknown): s is Region => REGIONS.includes(s as Region);

/** The object name of shard `index` in `region` of `room`. */
export const shardName = (room: string, region: Region, index: number) => `${room}/${region}/${index}`;

/** The room, region and index of a shard's object name; undefined for any other name. */
export function parseShardName(name: string): { room: string; region: Region; index: number } | undefined {
  const [room, region, index, ...rest] = name.split("/");
  if (rest.length > 0 || !isRegion(region) || !/^\d{1,6}$/.test(index ?? "")) return undefined;
  return { room, region, index: Number(index) };
}

interface Shard<S extends ShardStub> {
  name: string;
  region: Region;
  index: number;
  /** Subscribers: as the shard last said, plus those placed on it since. */
  subscribers: number;
  placedAtMs: number;
  /** Pushes in a row that failed (the next push retries with a sync). */
  failures: number;
  /** A sync after a failure is waiting (one at a time). */
  retrying: boolean;
  /**
   * One stub per shard for as long as it works: calls made through one stub arrive in the order
   * made, which is the order of the log (a new stub after a failure; a gap is then filled).
   */
  stub?: S;
}

/** A shard placed subscribers less than this long ago is not retired when it says it is empty. */
const PLACEMENT_GRACE_MS = 10_000;
/** A push that failed is followed by a sync after this long (doubling, up to 30 s). */
const RETRY_MS = 250;

export class ShardSet<S extends ShardStub = ShardStub> {
  readonly #sql: SqlStorage;
  readonly #byName = new Map<string, Shard<S>>();
  readonly #stub: (name: string, region: Region) => S;
  readonly #sync: (shard: string) => ShardPush;
  readonly #answered: (shard: string, r: PushResult, stub: S) => void;

  /**
   * `stub` makes a shard's stub; `sync` a push that tells a shard the end of the log (it fills what
   * it missed): sent after a failed push; `answered` hears every push answer (before an empty shard
   * is retired).
   */
  constructor(
    sql: SqlStorage,
    stub: (name: string, region: Region) => S,
    sync: (shard: string) => ShardPush,
    answered: (shard: string, r: PushResult, stub: S) => void,
  ) {
    this.#sql = sql;
    this.#stub = stub;
    this.#sync = sync;
    this.#answered = answered;
    sql.exec(`CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, region TEXT NOT NULL, idx INTEGER NOT NULL)`);
    for (const r of sql.exec<{ name: string; region: string; idx: number }>(`SELECT name, region, idx FROM shards`)) {
      if (isRegion(r.region)) this.#remember(r.name, r.region, r.idx, 0, 0);
    }
  }

  #remember(name: string, region: Region, index: number, subscribers: number, placedAtMs: number): Shard<S> {
    const s: Shard<S> = { name, region, index, subscribers, placedAtMs, failures: 0, retrying: false };
    this.#byName.set(name, s);
    return s;
  }

  /** Registers a new shard: stored, so the leader keeps pushing to it after a restart. */
  #register(name: string, region: Region, index: number, subscribers: number, placedAtMs: number): Shard<S> {
    this.#sql.exec(`INSERT OR REPLACE INTO shards (name, region, idx) VALUES (?, ?, ?)`, name, region, index);
    return this.#remember(name, region, index, subscribers, placedAtMs);
  }

  get size(): number {
    return this.#byName.size;
  }

  /** A stub of every shard, for calls that ask them all (stats, presence, disconnect). */
  stubs(): S[] {
    return [...this.#byName.values()].map((s) => {
      s.stub ??= this.#stub(s.name, s.region);
      return s.stub;
    });
  }

  /** Subscribers on every shard, as far as the leader knows (what each last said, plus placements since). */
  subscribers(): number {
    let n = 0;
    for (const s of this.#byName.values()) n += s.subscribers;
    return n;
  }

  /**
   * The shard of `region` a new subscriber goes to: the first one with room for it, or a new one
   * (registered at once, so it gets every fan-out from now on).
   */
  place(room: string, region: Region, perShard: number, nowMs: number): string {
    const ofRegion = [...this.#byName.values()].filter((s) => s.region === region).sort((a, b) => a.index - b.index);
    let shard = ofRegion.find((s) => s.subscribers < perShard);
    if (!shard) {
      let index = 0;
      while (ofRegion.some((s) => s.index === index)) index++;
      shard = this.#register(shardName(room, region, index), region, index, 0, nowMs);
    }
    shard.subscribers++;
    shard.placedAtMs = nowMs;
    return shard.name;
  }

  /**
   * Makes sure `name` (a shard of `region` opening a subscriber) is registered: it may have been
   * retired between the subscriber's placement and its arrival.
   */
  keep(name: string, region: Region, index: number, nowMs: number): void {
    const s = this.#byName.get(name);
    if (s) s.placedAtMs = nowMs;
    else this.#register(name, region, index, 1, nowMs);
  }

  /**
   * Sends one push to every shard (to `only`, when given). `make` builds each shard's push. A
   * shard's answer updates its count; an empty shard past its placement grace is retired; a push
   * that fails is followed by a sync, which makes the shard fill what it missed.
   */
  push(make: (shard: string) => ShardPush, only?: string): void {
    for (const s of this.#byName.values()) {
      if (only !== undefined && s.name !== only) continue;
      this.#send(s, make(s.name));
    }
  }

  #send(s: Shard<S>, p: ShardPush): void {
    s.stub ??= this.#stub(s.name, s.region);
    const stub = s.stub;
    stub.push(p).then(
      (r) => {
        s.failures = 0;
        this.#answered(s.name, r, stub);
        // Subscribers placed lately may still be on their way to the shard: its count leaves them out.
        const recent = Date.now() - s.placedAtMs <= PLACEMENT_GRACE_MS;
        s.subscribers = recent ? Math.max(s.subscribers, r.subscribers) : r.subscribers;
        if (r.subscribers === 0) this.#retire(s);
      },
      (e) => {
        s.stub = undefined;
        s.failures++;
        console.warn(`push to shard ${s.name} failed (${s.failures} in a row)`, e);
        this.#retry(s);
      },
    );
  }

  /** One sync after a failed push (one waiting per shard at a time; it backs off while pushes keep failing). */
  #retry(s: Shard<S>): void {
    if (s.retrying) return;
    s.retrying = true;
    const delay = Math.min(30_000, RETRY_MS * 2 ** Math.min(s.failures - 1, 7));
    setTimeout(() => {
      s.retrying = false;
      if (this.#byName.get(s.name) === s) this.#send(s, this.#sync(s.name));
    }, delay);
  }

  /**
   * Stops pushing to a shard and forgets it: it said it has no subscribers, and none were placed
   * on it lately (they may still be on their way).
   */
  #retire(s: Shard<S>): void {
    if (this.#byName.get(s.name) !== s || Date.now() - s.placedAtMs <= PLACEMENT_GRACE_MS) return;
    this.#byName.delete(s.name);
    this.#sql.exec(`DELETE FROM shards WHERE name = ?`, s.name);
  }
}
