/**
 * The room's connections: every subscriber, whatever its transport, is a hibernatable WebSocket
 * on the room, and this is the one place that reads the runtime's list of them. Each socket
 * carries an attachment saying who it is (serialized with the socket, so it survives
 * hibernation), and is tagged with its format, its caller's key, its user's name and, when it
 * asked for presence events, with that: so a broadcast finds all sockets of one format, the
 * connection limit a caller's sockets, presence a user's, without deserializing a single
 * attachment.
 */
import type { Principal } from "../auth/rights";
import type { Format } from "../protocol/formats";

/** Serialized with each socket (`serializeAttachment`, 16 KiB max). */
export interface Attachment {
  room: string;
  /** The client-facing transport, as the Worker named it ("websocket", "sse", ...): data, reported by presence and stats. */
  via: string;
  format: Format;
  connectedAtMs: number;
  /** Who it is, as the Worker admitted it: the name presence shows, rights, limits key, token expiry. */
  who: Principal;
  /** Whether it gets join and leave events. */
  presence?: boolean;
  /** Set on a fan-out shard's sockets: the shard's name (its publishes go to the room's leader). */
  shard?: string;
}

/** An attachment of version 1 (before tokens): the name the client gave, and no `who`. */
export type LegacyAttachment = Omit<Attachment, "who"> & { user: string };

/** The tag of a caller's sockets, so counting them reads only theirs ("u:" never starts a format). */
const userTag = (key: string) => `u:${key}`;
/** The tag of a user's sockets (by the name presence shows; a tag may have 256 characters, a name 64). */
const memberTag = (user: string) => `m:${user}`;
/** The tag of the sockets of one format that asked for presence events. */
const presenceTag = (format: Format) => `p:${format}`;

const isOpen = (ws: WebSocket) => ws.readyState === WebSocket.OPEN;

export class Connections {
  readonly #ctx: DurableObjectState;
  readonly #cache = new WeakMap<WebSocket, Attachment>();
  readonly #legacy: (att: LegacyAttachment) => Principal;

  /** `legacy`: who a socket is that was accepted before attachments said (see get). */
  constructor(ctx: DurableObjectState, legacy: (att: LegacyAttachment) => Principal) {
    this.#ctx = ctx;
    this.#legacy = legacy;
  }

  /** Accepts a socket as a hibernatable subscriber and remembers who it is. */
  accept(ws: WebSocket, att: Attachment): void {
    const tags = [att.format, userTag(att.who.key), memberTag(att.who.user)];
    if (att.presence) tags.push(presenceTag(att.format));
    this.#ctx.acceptWebSocket(ws, tags);
    ws.serializeAttachment(att);
    this.#cache.set(ws, att);
  }

  /** Replaces the attachment of `ws` (a refreshed token). */
  update(ws: WebSocket, att: Attachment): void {
    ws.serializeAttachment(att);
    this.#cache.set(ws, att);
  }

  /** The attachment of `ws` (read from the socket once per object: after hibernation the cache is empty). */
  get(ws: WebSocket): Attachment {
    let att = this.#cache.get(ws);
    if (!att) {
      att = ws.deserializeAttachment() as Attachment;
      // A socket accepted before tokens existed (and still open across the deploy) has no `who`:
      // it connected anonymously, so it is held to the anonymous policy of today.
      att.who ??= this.#legacy(att as unknown as LegacyAttachment);
      this.#cache.set(ws, att);
    }
    return att;
  }

  /** The open sockets of one format. */
  ofFormat(format: Format): WebSocket[] {
    return this.#ctx.getWebSockets(format);
  }

  /** How many sockets the room holds, closing ones included (they still hold what was sent to them). */
  count(): number {
    return this.#ctx.getWebSockets().length;
  }

  /** Every open socket (one the room is closing, e.g. as too slow, is gone already). */
  open(): WebSocket[] {
    return this.#ctx.getWebSockets().filter(isOpen);
  }

  /** The open sockets of one format that asked for presence events. */
  presenceOf(format: Format): WebSocket[] {
    return this.#ctx.getWebSockets(presenceTag(format)).filter(isOpen);
  }

  /** The open sockets of the user presence knows as `user`. */
  ofUser(user: string): WebSocket[] {
    return this.#ctx.getWebSockets(memberTag(user)).filter(isOpen);
  }

  /** The attachment of every open socket. */
  attachments(): Attachment[] {
    return this.open().map((ws) => this.get(ws));
  }

  /** How many open sockets the caller known by `key` holds (MAX_CONNECTIONS_PER_USER). */
  countOf(key: string): number {
    return this.#ctx.getWebSockets(userTag(key)).filter(isOpen).length;
  }
}
