/**
 * The leader's record of which users are connected on which of its fan-out shards, so that a
 * presence `join` goes out when a user's first connection anywhere in the room opens, and a
 * `leave` when their last one anywhere closes (presence.ts; the leader's own connections it reads
 * from its sockets). Shards report their users' first and last connections (RPC), and say how many
 * users they hold in every push answer: a count that differs from this record (a shard restarted,
 * losing its sockets; a report lost) makes the leader read the shard's members and correct it.
 *
 * Kept in SQLite: it must outlive the leader's hibernation, while the shards' sockets live on.
 */
export class ShardMembers {
  readonly #sql: SqlStorage;
  /** Users per shard, as recorded (mirrors the table). */
  readonly #counts = new Map<string, number>();

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    sql.exec(
      `CREATE TABLE IF NOT EXISTS shard_members (user TEXT NOT NULL, shard TEXT NOT NULL, PRIMARY KEY (user, shard))`,
    );
    for (const r of sql.exec<{ shard: string; n: number }>(
      `SELECT shard, count(*) AS n FROM shard_members GROUP BY shard`,
    )) {
      this.#counts.set(r.shard, r.n);
    }
  }

  /** Whether `user` is connected on any shard. */
  has(user: string): boolean {
    if (this.#counts.size === 0) return false;
    return this.#sql.exec(`SELECT 1 FROM shard_members WHERE user = ? LIMIT 1`, user).toArray().length > 0;
  }

  /** Whether `user` is connected on a shard other than `shard`. */
  elsewhere(user: string, shard: string): boolean {
    return (
      this.#sql.exec(`SELECT 1 FROM shard_members WHERE user = ? AND shard != ? LIMIT 1`, user, shard).toArray()
        .length > 0
    );
  }

  /** Users recorded on `shard`. */
  count(shard: string): number {
    return this.#counts.get(shard) ?? 0;
  }

  /** Records that `user` is (or is no longer) connected on `shard`. */
  set(shard: string, user: string, present: boolean): void {
    const was = this.#sql.exec(`SELECT 1 FROM shard_members WHERE user = ? AND shard = ?`, user, shard).toArray();
    if (present === was.length > 0) return;
    if (present) this.#sql.exec(`INSERT INTO shard_members (user, shard) VALUES (?, ?)`, user, shard);
    else this.#sql.exec(`DELETE FROM shard_members WHERE user = ? AND shard = ?`, user, shard);
    const n = this.count(shard) + (present ? 1 : -1);
    if (n > 0) this.#counts.set(shard, n);
    else this.#counts.delete(shard);
  }

  /** Makes `users` the record of `shard`; returns the users it added and removed. */
  replace(shard: string, users: readonly string[]): { added: string[]; removed: string[] } {
    const now = new Set(users);
    const before = new Set(
      this.#sql
        .exec<{ user: string }>(`SELECT user FROM shard_members WHERE shard = ?`, shard)
        .toArray()
        .map((r) => r.user),
    );
    const added = [...now].filter((u) => !before.has(u));
    const removed = [...before].filter((u) => !now.has(u));
    for (const u of added) this.set(shard, u, true);
    for (const u of removed) this.set(shard, u, false);
    return { added, removed };
  }
}
