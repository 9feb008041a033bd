import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { RoomLog } from "../../src/room/log";
import { planResume } from "../../src/room/resume";

/** Runs `fn` with the SQLite storage of a fresh room object. */
function withSql<R>(name: string, fn: (sql: SqlStorage) => R): Promise<R> {
  return runInDurableObject(env.ROOM.getByName(name), (_room, state) => fn(state.storage.sql));
}

const keepAll = { maxCount: 1000, maxAgeMs: 0 };

describe("RoomLog", () => {
  it("appends with offsets 1, 2, 3 and reads ranges", () =>
    withSql("log-append", (sql) => {
      const log = new RoomLog(sql, keepAll);
      expect(log.lastSeq).toBe(0);
      const seqs = ["a", "b", "c", "d"].map((text, i) => log.append({ user: "u", text }, 1000 + i).event.seq);
      expect(seqs).toEqual([1, 2, 3, 4]);
      expect(log.read(0, 10, 2000).map((e) => e.text)).toEqual(["a", "b", "c", "d"]);
      expect(log.read(1, 2, 2000).map((e) => e.seq)).toEqual([2, 3]);
      expect(log.read(4, 10, 2000)).toEqual([]);
      expect(log.firstAvailable(2000)).toBe(1);
      const first = log.read(0, 1, 2000)[0];
      expect(first).toMatchObject({ seq: 1, user: "u", text: "a", timeMs: 1000 });
      expect(first.id).toMatch(/^[0-9a-f-]{36}$/);
    }));

  it("keeps its epoch and offsets when reopened (a new object after hibernation or restart)", () =>
    withSql("log-reopen", (sql) => {
      const log = new RoomLog(sql, keepAll);
      log.append({ user: "u", text: "one" }, 1);
      log.append({ user: "u", text: "two" }, 2);
      const again = new RoomLog(sql, keepAll);
      expect(again.epoch).toBe(log.epoch);
      expect(again.lastSeq).toBe(2);
      expect(again.append({ user: "u", text: "three" }, 3).event.seq).toBe(3);
    }));

  it("migrates a version-1 log in place: rows, epoch and every id's uniqueness kept", () =>
    withSql("log-migrate", (sql) => {
      // The object's constructor made the current layout: replace it with version 1's.
      sql.exec(`DROP TABLE events`);
      sql.exec(`DROP TABLE meta`);
      sql.exec(`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
      sql.exec(`INSERT INTO meta (key, value) VALUES ('epoch', 'old-epoch')`);
      sql.exec(`CREATE TABLE events (
         seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, user TEXT NOT NULL,
         time_ms INTEGER NOT NULL, text TEXT NOT NULL)`);
      sql.exec(`INSERT INTO events VALUES (1, 'k1', 'u', 10, 'a'), (2, 'server-made', 'u', 11, 'b')`);
      const log = new RoomLog(sql, keepAll);
      expect(log.epoch).toBe("old-epoch");
      expect(log.lastSeq).toBe(2);
      expect(log.read(0, 10, 20).map((e) => [e.seq, e.id, e.text])).toEqual([
        [1, "k1", "a"],
        [2, "server-made", "b"],
      ]);
      // Any old id may have been a client's key: all stay unique.
      expect(log.append({ id: "k1", user: "u", text: "retry" }, 30)).toMatchObject({ duplicate: true });
      expect(log.append({ id: "server-made", user: "u", text: "retry" }, 30)).toMatchObject({ duplicate: true });
      expect(log.append({ user: "u", text: "c" }, 30).event.seq).toBe(3);
      expect(new RoomLog(sql, keepAll).read(0, 10, 40).map((e) => e.text)).toEqual(["a", "b", "c"]);
    }));

  it("indexes only publishers' ids, not the ones it makes itself", () =>
    withSql("log-keyed", (sql) => {
      const log = new RoomLog(sql, keepAll);
      const made = log.append({ user: "u", text: "no id" }, 1).event.id;
      expect(log.append({ id: "client-1", user: "u", text: "x" }, 2).duplicate).toBe(false);
      expect(log.append({ id: "client-1", user: "u", text: "x" }, 3).duplicate).toBe(true);
      const keyed = sql
        .exec<{ id: string }>(`SELECT id FROM events INDEXED BY events_owner_key WHERE keyed = 1`)
        .toArray();
      expect(keyed.map((r) => r.id)).toEqual(["client-1"]);
      expect(made).toMatch(/^[0-9a-f-]{36}$/);
    }));

  it("returns the original event for a repeated id and writes nothing", () =>
    withSql("log-idempotent", (sql) => {
      const log = new RoomLog(sql, keepAll);
      const first = log.append({ id: "k1", user: "u", text: "hello" }, 10);
      const retry = log.append({ id: "k1", user: "other", text: "changed" }, 20);
      expect(first.duplicate).toBe(false);
      expect(retry).toEqual({ event: first.event, duplicate: true });
      expect(log.lastSeq).toBe(1);
      expect(log.storedRows()).toBe(1);
      expect(log.read(0, 10, 30).map((e) => [e.seq, e.id, e.text])).toEqual([[1, "k1", "hello"]]);
    }));

  it("applies count retention exactly on reads and trims rows later", () =>
    withSql("log-count", (sql) => {
      const log = new RoomLog(sql, { maxCount: 3, maxAgeMs: 0 });
      for (let i = 1; i <= 5; i++) log.append({ user: "u", text: `m${i}` }, i);
      expect(log.firstAvailable(10)).toBe(3);
      expect(log.read(0, 10, 10).map((e) => e.seq)).toEqual([3, 4, 5]);
      log.trim(10);
      expect(log.storedRows()).toBe(3);
      // An id whose event has left retention is free again.
      log.append({ id: "x", user: "u", text: "first x" }, 11);
      for (let i = 0; i < 3; i++) log.append({ user: "u", text: "later" }, 12);
      expect(log.append({ id: "x", user: "u", text: "second x" }, 13).duplicate).toBe(false);
    }));

  it("groups writes: rows appended later are written together, before any read, all or none", () =>
    withSql("log-later", (sql) => {
      const log = new RoomLog(sql, keepAll);
      const seqs = ["a", "b", "c"].map((text, i) => log.appendLater({ user: "u", text }, 10 + i).event.seq);
      expect(seqs).toEqual([1, 2, 3]);
      expect(log.unwritten).toBe(3);
      expect(sql.exec(`SELECT count(*) AS n FROM events`).one().n).toBe(0);
      // A read (here a retry's lookup by id) writes what waits first.
      expect(log.read(0, 10, 20).map((e) => e.text)).toEqual(["a", "b", "c"]);
      expect(log.unwritten).toBe(0);
      log.appendLater({ id: "k", user: "u", text: "d" }, 20);
      expect(log.appendLater({ id: "k", user: "u", text: "again" }, 21)).toMatchObject({ duplicate: true });
      // A write that fails part way stores none of its rows, and offsets go on from what is stored.
      log.appendLater({ user: "u", text: "e" }, 30);
      log.appendLater({ user: "u", text: "f" }, 31);
      sql.exec(
        `INSERT INTO events (seq, id, user, time_ms, text, keyed, owner) VALUES (6, 'x', 'u', 31, 'in the way', 0, '')`,
      );
      expect(() => log.write()).toThrow();
      expect(log.read(0, 10, 40).map((e) => e.text)).toEqual(["a", "b", "c", "d", "in the way"]);
      expect(log.append({ user: "u", text: "g" }, 40).event.seq).toBe(7);
    }));

  it("applies age retention, keeps the newest row so offsets continue, and never goes back in time", () =>
    withSql("log-age", (sql) => {
      const log = new RoomLog(sql, { maxCount: 100, maxAgeMs: 1000 });
      log.append({ user: "u", text: "old" }, 0);
      log.append({ user: "u", text: "mid" }, 500);
      log.append({ user: "u", text: "new" }, 2000);
      expect(log.firstAvailable(2100)).toBe(3);
      expect(log.read(0, 10, 2100).map((e) => e.text)).toEqual(["new"]);
      // Everything expired: nothing readable, the next offset is still 4.
      expect(log.firstAvailable(9000)).toBe(4);
      expect(log.read(0, 10, 9000)).toEqual([]);
      log.trim(9000);
      expect(log.storedRows()).toBe(1);
      const reopened = new RoomLog(sql, { maxCount: 100, maxAgeMs: 1000 });
      // A clock that steps back does not make time go backwards in the log.
      expect(reopened.append({ user: "u", text: "after" }, 1500).event).toMatchObject({ seq: 4, timeMs: 2000 });
    }));
});

describe("planResume", () => {
  it("replays from the offset after `since`, or tells of a gap", () =>
    withSql("resume-plan", (sql) => {
      const log = new RoomLog(sql, { maxCount: 3, maxAgeMs: 0 });
      expect(planResume(log, 0, 0)).toEqual({ firstSeq: 0, replayFrom: 1 });
      for (let i = 1; i <= 5; i++) log.append({ user: "u", text: `m${i}` }, i);
      // Live only.
      expect(planResume(log, 10)).toEqual({ firstSeq: 3 });
      expect(planResume(log, 10, 3)).toEqual({ firstSeq: 3, replayFrom: 4 });
      expect(planResume(log, 10, 2)).toEqual({ firstSeq: 3, replayFrom: 3 });
      expect(planResume(log, 10, 5)).toEqual({ firstSeq: 3, replayFrom: 6 });
      expect(planResume(log, 10, 1, log.epoch)).toMatchObject({ replayFrom: 3, gap: { reason: "retention" } });
      expect(planResume(log, 10, 1).gap?.text).toBe("events 2-2 are no longer retained");
      expect(planResume(log, 10, 9)).toMatchObject({ replayFrom: 3, gap: { reason: "ahead" } });
      expect(planResume(log, 10, 4, "other")).toMatchObject({ replayFrom: 3, gap: { reason: "epoch" } });
    }));
});
