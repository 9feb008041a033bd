/**
 * RoomLog: a room's durable, ordered message log in the Durable Object's SQLite storage.
 *
 * Offsets (`seq`) are 1, 2, 3, ... per epoch, assigned in write order. Retention (a count and an
 * age) is exact on every read: events past it are invisible at once, and their rows are deleted
 * a few writes later. The newest row is never deleted, so the next offset survives a restart even
 * when every event has expired. Idempotency keys are unique per room and owner (the publisher's
 * token `sub`; one shared scope for anonymous publishers) for as long as their event is stored:
 * one user's id can never make another's publish a "retry" of theirs.
 *
 * Writes can be grouped ({@link RoomLog.appendLater} and {@link RoomLog.write}): the Durable
 * Object commits once per event it handles, and a commit costs far more CPU than the rows in it
 * (~0.6 ms for one row or 32, measured under workerd), so rows appended while frames and calls
 * arrive are written together, in one commit, once they stop. Every read writes what waits first,
 * so the log never looks shorter than what was appended.
 *
 * Only publishers' own ids (`keyed = 1`) are in the unique index: the random UUIDs the room makes
 * for the rest are never looked up, and indexing them cost ~20 µs of CPU per insert-and-commit
 * (~140 µs instead of ~120, measured under wrangler dev with one commit per insert).
 */

/** One stored event, as kept in SQLite. */
export interface StoredEvent {
  seq: number;
  id: string;
  user: string;
  timeMs: number;
  text: string;
}

/** How much history a room keeps. */
export interface Retention {
  maxCount: number;
  /** 0 = no age limit. */
  maxAgeMs: number;
}

/** The result of an append: the stored event, and whether it was stored before under the same id. */
export interface AppendResult {
  event: StoredEvent;
  duplicate: boolean;
}

/** Physical deletes run every this many writes; reads apply retention exactly in between. */
const TRIM_EVERY = 32;

type Row = { seq: number; id: string; user: string; time_ms: number; text: string } & Record<string, SqlStorageValue>;

const toEvent = (r: Row): StoredEvent => ({
  seq: r.seq,
  id: r.id,
  user: r.user,
  timeMs: r.time_ms,
  text: r.text,
});

/**
 * The table's layout. Version 1 had every id, server-made ones too, in a UNIQUE column; version 2
 * had ids unique per room whoever published them.
 */
const SCHEMA_VERSION = 3;
const CREATE_EVENTS = (table: string) =>
  `CREATE TABLE ${table} (
     seq INTEGER PRIMARY KEY, id TEXT NOT NULL, user TEXT NOT NULL,
     time_ms INTEGER NOT NULL, text TEXT NOT NULL, keyed INTEGER NOT NULL, owner TEXT NOT NULL DEFAULT '')`;
const CREATE_KEY_INDEX = `CREATE UNIQUE INDEX IF NOT EXISTS events_owner_key ON events (owner, id) WHERE keyed = 1`;

/**
 * Creates the events table, or brings one of an older layout up to date. Synchronous, so the
 * Durable Object commits it as one transaction: a migration happens entirely or not at all.
 */
function migrate(sql: SqlStorage, meta: (key: string) => string | undefined): void {
  const exists = sql.exec(`SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'events'`).toArray();
  const version = Number(meta("schema") ?? (exists.length > 0 ? 1 : 0));
  if (version >= SCHEMA_VERSION) return;
  if (version === 0) sql.exec(CREATE_EVENTS("events"));
  else if (version === 1) {
    // Keep every row, and every id in the index (any of them may be a client's key).
    sql.exec(CREATE_EVENTS("events_v3"));
    sql.exec(`INSERT INTO events_v3 SELECT seq, id, user, time_ms, text, 1, '' FROM events`);
    sql.exec(`DROP TABLE events`);
    sql.exec(`ALTER TABLE events_v3 RENAME TO events`);
  } else {
    // Version 2: the ids stored so far stay in the shared (anonymous) scope.
    sql.exec(`ALTER TABLE events ADD COLUMN owner TEXT NOT NULL DEFAULT ''`);
    sql.exec(`DROP INDEX IF EXISTS events_key`);
  }
  sql.exec(CREATE_KEY_INDEX);
  sql.exec(`INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?)`, String(SCHEMA_VERSION));
}

/** Makes a new epoch: short, unique enough to tell one life of a log from another. */
function newEpoch(): string {
  return `${Date.now().toString(36)}${crypto.randomUUID().slice(0, 8)}`;
}

export class RoomLog {
  readonly #sql: SqlStorage;
  readonly #retention: Retention;
  #epoch: string;
  #lastSeq: number;
  #lastTimeMs: number;
  /** Appended, not yet written (see {@link appendLater}); with what each was appended as. */
  #unwritten: { event: StoredEvent; keyed: boolean; owner: string; nowMs: number }[] = [];

  /** Opens (creating on first use) the log in `sql`. Cheap: runs on every Durable Object start. */
  constructor(sql: SqlStorage, retention: Retention) {
    this.#sql = sql;
    this.#retention = retention;
    sql.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    const meta = (key: string) =>
      sql.exec<{ value: string }>(`SELECT value FROM meta WHERE key = ?`, key).toArray()[0]?.value;
    migrate(sql, meta);
    const epoch = meta("epoch");
    if (epoch) {
      this.#epoch = epoch;
    } else {
      this.#epoch = newEpoch();
      sql.exec(`INSERT INTO meta (key, value) VALUES ('epoch', ?)`, this.#epoch);
    }
    this.#lastSeq = 0;
    this.#lastTimeMs = 0;
    this.#readLast();
  }

  /** The newest offset and time, from what is stored. */
  #readLast(): void {
    const last = this.#sql
      .exec<{ seq: number; time_ms: number }>(`SELECT seq, time_ms FROM events ORDER BY seq DESC LIMIT 1`)
      .toArray()[0];
    this.#lastSeq = last?.seq ?? 0;
    this.#lastTimeMs = last?.time_ms ?? 0;
  }

  /** The epoch of this log. */
  get epoch(): string {
    return this.#epoch;
  }

  /** The newest offset written (0 when nothing was ever written in this epoch). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The oldest offset a reader can still get at `nowMs`; `lastSeq + 1` when nothing is retained. */
  firstAvailable(nowMs: number): number {
    this.write();
    const floor = Math.max(1, this.#lastSeq - this.#retention.maxCount + 1);
    const row = this.#sql
      .exec<{ seq: number }>(
        `SELECT seq FROM events WHERE seq >= ? AND time_ms >= ? ORDER BY seq LIMIT 1`,
        floor,
        this.#ageCutoff(nowMs),
      )
      .toArray()[0];
    return row?.seq ?? this.#lastSeq + 1;
  }

  /**
   * Appends one event with the next offset. With an `id` its owner used before, returns the
   * original event instead (`duplicate: true`) and writes nothing.
   */
  append(input: { id?: string; user: string; text: string; owner?: string }, nowMs: number): AppendResult {
    const result = this.appendLater(input, nowMs);
    this.write();
    return result;
  }

  /**
   * Like {@link append}, but the row is written by the next {@link write} (or read): the caller
   * calls it before it tells anyone of the event, so that the output gate holds that news until the
   * row is committed. Rows appended in a row are written together, in one commit.
   */
  appendLater(input: { id?: string; user: string; text: string; owner?: string }, nowMs: number): AppendResult {
    const owner = input.owner ?? "";
    if (input.id) {
      const row = this.#byId(owner, input.id);
      if (row && row.seq >= this.firstAvailable(nowMs)) return { event: toEvent(row), duplicate: true };
      // An expired event may still hold this id in a row not yet trimmed: the id is free again.
      if (row) this.#sql.exec(`DELETE FROM events WHERE seq = ?`, row.seq);
    }
    // Never decreasing within a room, so age retention can cut the log at one offset.
    const timeMs = Math.max(nowMs, this.#lastTimeMs);
    const event: StoredEvent = {
      seq: this.#lastSeq + 1,
      id: input.id || crypto.randomUUID(),
      user: input.user,
      timeMs,
      text: input.text,
    };
    this.#unwritten.push({ event, keyed: !!input.id, owner, nowMs });
    this.#lastSeq = event.seq;
    this.#lastTimeMs = timeMs;
    return { event, duplicate: false };
  }

  /** How many appended rows wait for {@link write}. */
  get unwritten(): number {
    return this.#unwritten.length;
  }

  /**
   * Writes the rows appended since the last write, all or none: when one fails, those written
   * before it are deleted again, the offsets go on from what is stored, and the error is thrown.
   */
  write(): void {
    const rows = this.#unwritten;
    if (rows.length === 0) return;
    this.#unwritten = [];
    const first = rows[0].event.seq;
    let written = first - 1;
    try {
      for (const { event: e, keyed, owner } of rows) {
        this.#sql.exec(
          `INSERT INTO events (seq, id, user, time_ms, text, keyed, owner) VALUES (?, ?, ?, ?, ?, ?, ?)`,
          e.seq,
          e.id,
          e.user,
          e.timeMs,
          e.text,
          keyed ? 1 : 0,
          owner,
        );
        written = e.seq;
      }
    } catch (err) {
      try {
        this.#sql.exec(`DELETE FROM events WHERE seq >= ? AND seq <= ?`, first, written);
      } finally {
        this.#readLast();
      }
      throw err;
    }
    const last = rows[rows.length - 1];
    // Trim when the write passed a multiple of TRIM_EVERY (every TRIM_EVERY rows, however grouped).
    if (Math.floor(last.event.seq / TRIM_EVERY) > Math.floor((first - 1) / TRIM_EVERY)) this.trim(last.nowMs);
  }

  /** The retained events after `since`, oldest first, at most `limit` of them. */
  read(since: number, limit: number, nowMs: number): StoredEvent[] {
    return [...this.iterate(since, nowMs, limit)];
  }

  /** Like {@link read}, lazily: rows are fetched from SQLite as they are consumed. */
  *iterate(since: number, nowMs: number, limit = Number.MAX_SAFE_INTEGER): Generator<StoredEvent> {
    const from = Math.max(since + 1, this.firstAvailable(nowMs));
    const cursor = this.#sql.exec<Row>(
      `SELECT seq, id, user, time_ms, text FROM events WHERE seq >= ? ORDER BY seq LIMIT ?`,
      from,
      limit,
    );
    for (const row of cursor) yield toEvent(row);
  }

  /** Deletes the rows that retention has already hidden, keeping the newest row. */
  trim(nowMs: number): void {
    const keepFrom = Math.min(this.firstAvailable(nowMs), this.#lastSeq);
    this.#sql.exec(`DELETE FROM events WHERE seq < ?`, keepFrom);
  }

  /** The number of rows physically stored (for tests and metrics). */
  storedRows(): number {
    this.write();
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM events`).one().n;
  }

  #byId(owner: string, id: string): Row | undefined {
    this.write();
    return this.#sql
      .exec<Row>(`SELECT seq, id, user, time_ms, text FROM events WHERE owner = ? AND id = ? AND keyed = 1`, owner, id)
      .toArray()[0];
  }

  #ageCutoff(nowMs: number): number {
    return this.#retention.maxAgeMs > 0 ? nowMs - this.#retention.maxAgeMs : Number.MIN_SAFE_INTEGER;
  }
}
