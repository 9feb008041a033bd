/**
 * Presence as users, not sockets: a user with three tabs on two transports is one member with
 * three connections. Join and leave follow a user's first and last connection, so a reload
 * (a new socket before the old one's close arrives) is no leave and join.
 */
import type { MemberData } from "../protocol/events";
import type { Attachment } from "./connections";

/** The members among these connections' attachments, one per user, earliest first. */
export function members(attachments: readonly Attachment[]): MemberData[] {
  const byUser = new Map<string, { connectedAtMs: number; connections: number; transports: Set<string> }>();
  for (const a of attachments) {
    const m = byUser.get(a.who.user);
    if (!m) {
      byUser.set(a.who.user, { connectedAtMs: a.connectedAtMs, connections: 1, transports: new Set([a.via]) });
      continue;
    }
    m.connectedAtMs = Math.min(m.connectedAtMs, a.connectedAtMs);
    m.connections++;
    m.transports.add(a.via);
  }
  return [...byUser]
    .map(([user, m]) => ({ user, ...m, transports: [...m.transports].sort() }))
    .sort((a, b) => a.connectedAtMs - b.connectedAtMs || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}

/** `user` as a member, given their open connections' attachments (none: they have left). */
export function memberOf(user: string, attachments: readonly Attachment[]): MemberData {
  return members(attachments)[0] ?? { user, connectedAtMs: 0, connections: 0, transports: [] };
}

/** One list of members from the lists of several objects (a room's leader and its shards): one member per user. */
export function mergeMembers(lists: readonly MemberData[][]): MemberData[] {
  const byUser = new Map<string, MemberData>();
  for (const m of lists.flat()) {
    const seen = byUser.get(m.user);
    if (!seen) {
      byUser.set(m.user, { ...m, transports: [...m.transports] });
      continue;
    }
    seen.connectedAtMs = Math.min(seen.connectedAtMs, m.connectedAtMs);
    seen.connections += m.connections;
    seen.transports = [...new Set([...seen.transports, ...m.transports])].sort();
  }
  return [...byUser.values()].sort(
    (a, b) => a.connectedAtMs - b.connectedAtMs || (a.user < b.user ? -1 : a.user > b.user ? 1 : 0),
  );
}
