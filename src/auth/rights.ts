/**
 * Who a caller is and what it may do in which room: the token's rights (docs/auth.md), the
 * anonymous policy, and the plain-data {@link Principal} the Worker hands the room, which acts on
 * it (the name events carry, the key limits count by, the scope of idempotency ids) without ever
 * reading a token itself, except to refresh one in place.
 */
import type { AnonymousAccess } from "../settings";

/** What a token grants: room patterns per action (a name, or a prefix ending in `*`), and admin. */
export interface Rights {
  subscribe: string[];
  publish: string[];
  presence: string[];
  admin: boolean;
}

export type Action = "subscribe" | "publish" | "presence" | "admin";

/** A caller, from its token or the anonymous policy. */
export interface Identity {
  /** The token's `sub`; undefined when anonymous. */
  sub?: string;
  /** Whom the abuse limits count: `sub:<sub>`, or `ip:<address>` when anonymous. */
  key: string;
  /** When the token expires (ms since the epoch); undefined when anonymous. */
  expMs?: number;
  rights: Rights;
}

/** Whether `room` matches one of `patterns`. */
export function matches(patterns: readonly string[], room: string): boolean {
  return patterns.some((p) => p === room || (p.endsWith("*") && room.startsWith(p.slice(0, -1))));
}

/** Whether `who` may do `action` in `room`. An admin may do everything everywhere. */
export function can(who: Identity, action: Action, room: string): boolean {
  if (who.rights.admin) return true;
  if (action === "admin") return false;
  return matches(who.rights[action], room);
}

const NONE: Rights = { subscribe: [], publish: [], presence: [], admin: false };
const ANONYMOUS: Record<AnonymousAccess, Rights> = {
  none: NONE,
  subscribe: { subscribe: ["*"], publish: [], presence: ["*"], admin: false },
  publish: { subscribe: ["*"], publish: ["*"], presence: ["*"], admin: false },
};

/** A caller without a token, under the ANONYMOUS_ACCESS policy, known by its address. */
export function anonymous(access: AnonymousAccess, address: string): Identity {
  return { key: `ip:${address}`, rights: ANONYMOUS[access] };
}

/**
 * A caller as the room sees it, for one room (plain data: it crosses RPC and is kept in a
 * socket's attachment).
 */
export interface Principal {
  /** The name its events and presence carry: the `sub`, or the name an anonymous client gave. */
  user: string;
  /** Whether `user` is fixed (a token holder's `sub`) or a publish may name another (anonymous, admin). */
  userFixed: boolean;
  /** See {@link Identity.key}. */
  key: string;
  /** The scope of its idempotency ids: the `sub`; "" for every anonymous client. */
  owner: string;
  anonymous: boolean;
  /** The client's address, for the anonymous new-room limit. */
  address: string;
  canPublish: boolean;
  /** When its token expires (ms); 0: never (anonymous). */
  expMs: number;
}

/** `who` in `room`; `name` is the user an anonymous client (or an admin) gave. */
export function principal(who: Identity, room: string, address: string, name?: string): Principal {
  const admin = who.rights.admin;
  return {
    user: who.sub === undefined ? (name ?? "anonymous") : admin ? (name ?? who.sub) : who.sub,
    userFixed: who.sub !== undefined && !admin,
    key: who.key,
    owner: who.sub ?? "",
    anonymous: who.sub === undefined,
    address,
    canPublish: can(who, "publish", room),
    expMs: who.expMs ?? 0,
  };
}
