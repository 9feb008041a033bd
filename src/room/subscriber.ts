/**
 * What the room keeps about each subscriber. Every subscriber, whatever its transport, is a
 * hibernatable WebSocket on the room; this attachment (serialized with the socket, so it survives
 * hibernation) says who it is. Its mode is also the socket's tag, so a broadcast finds all sockets
 * of one mode without deserializing a single attachment.
 */
import type { Mode } from "../protocol/frames";

/** The client-facing transport behind a socket: a browser WebSocket, or a Worker-side bridge. */
export type Transport = "websocket" | "sse" | "connect";

/** Serialized with each socket (`serializeAttachment`, 16 KiB max). */
export interface Attachment {
  room: string;
  user: string;
  transport: Transport;
  mode: Mode;
  connectedAtMs: number;
}

export const TRANSPORTS: readonly Transport[] = ["websocket", "sse", "connect"];

/**
 * Attachments cached in memory, rebuilt from the sockets after hibernation (a fresh room object
 * starts with an empty cache and reads each socket's attachment on first use).
 */
export class Subscribers {
  readonly #cache = new WeakMap<WebSocket, Attachment>();

  /** Remembers a new socket's attachment, in memory and on the socket. */
  attach(ws: WebSocket, att: Attachment): void {
    ws.serializeAttachment(att);
    this.#cache.set(ws, att);
  }

  /** The attachment of `ws`. */
  get(ws: WebSocket): Attachment {
    let att = this.#cache.get(ws);
    if (!att) {
      att = ws.deserializeAttachment() as Attachment;
      this.#cache.set(ws, att);
    }
    return att;
  }
}
