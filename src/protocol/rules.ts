/**
 * Every rule about what a client may send, in one place, the same for every transport: room
 * names, user names, message texts, idempotency keys, offsets, epochs and transport labels. Each
 * parser takes what the wire gave (a query string, a header, a JSON value, a protobuf field) and
 * either returns the checked value or throws a RelayError that says what is wrong.
 */
import { RelayError } from "../errors";

/** A checked room name. Only {@link parseRoomName} makes one, so no unchecked name reaches a room. */
export type RoomName = string & { readonly __room: unique symbol };

const ROOM_NAME = /^[A-Za-z0-9._~-]{1,64}$/;
/** Idempotency keys: 1-128 printable ASCII characters, no spaces. */
const ID = /^[\x21-\x7e]{1,128}$/;
/** User names: 1-64 characters (code points), no control characters. */
const USER = /^[^\p{Cc}]{1,64}$/u;
/** An epoch, as the room makes them (see RoomLog): short, URL-safe. */
const EPOCH = /^[A-Za-z0-9_-]{1,64}$/;
/** An offset: plain digits, as in the SSE `id:` line. 16 digits bound it before Number() does. */
const OFFSET = /^\d{1,16}$/;
/** A transport label, reported by presence and stats. */
const VIA = /^[a-z0-9-]{1,16}$/;

/**
 * Room names: 1-64 characters of `A-Z a-z 0-9 . _ ~ -`, but not `.` or `..` (a URL path cannot
 * carry them: they are path steps); anything else never reaches a room.
 */
export function parseRoomName(value: unknown): RoomName {
  if (typeof value !== "string" || !ROOM_NAME.test(value) || value === "." || value === "..") {
    throw new RelayError("invalid_argument", "room names are 1-64 characters of A-Z a-z 0-9 . _ ~ -, not . or ..");
  }
  return value as RoomName;
}

/**
 * Strings must be well-formed UTF-16: a lone surrogate has no UTF-8 form, so SQLite would store
 * something else than what the ack and the live subscribers got.
 */
function wellFormed(value: string, name: string): string {
  if (!value.isWellFormed()) {
    throw new RelayError("invalid_encoding", `${name} is not valid Unicode (it holds a lone surrogate)`);
  }
  return value;
}

/** The UTF-8 length of a well-formed string, without encoding it. */
export function utf8Length(s: string): number {
  let bytes = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    // 1 byte per unit below 0x80; 2 below 0x800; 3 for the rest of the BMP; a surrogate pair
    // (2 units) is 4 bytes, so each of its units adds 1.
    if (c >= 0x80) bytes += c < 0x800 ? 1 : c >= 0xd800 && c < 0xe000 ? 1 : 2;
  }
  return bytes;
}

/** A message text: a non-empty, well-formed string of at most `maxBytes` UTF-8 bytes. */
export function parseText(value: unknown, maxBytes: number): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new RelayError("invalid_argument", "text must be a non-empty string");
  }
  // Cheap bound first: UTF-8 bytes >= UTF-16 units.
  if (value.length > maxBytes) throw new RelayError("too_large", `text is larger than ${maxBytes} bytes`);
  wellFormed(value, "text");
  if (utf8Length(value) > maxBytes) throw new RelayError("too_large", `text is larger than ${maxBytes} bytes`);
  return value;
}

/** An optional idempotency key ("" or undefined: none). */
export function parseId(value: unknown): string {
  if (value === undefined || value === null || value === "") return "";
  if (typeof value !== "string" || !ID.test(value)) {
    throw new RelayError("invalid_argument", "id must be 1-128 printable ASCII characters without spaces");
  }
  return value;
}

/** An optional user name ("" or undefined: none). */
export function parseUser(value: unknown): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string" || !USER.test(wellFormed(value, "user"))) {
    throw new RelayError("invalid_argument", "user must be 1-64 characters, no control characters");
  }
  return value;
}

/**
 * An optional log offset (`since`, `Last-Event-ID`, `limit`): digits, or a protobuf uint64, at
 * most 2^53-1. Absent or "" → undefined.
 */
export function parseOffset(value: string | bigint | undefined | null, name: string): number | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  const n = typeof value === "bigint" ? Number(value) : OFFSET.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new RelayError("invalid_argument", `${name} must be an integer from 0 to 2^53-1`);
  }
  return n;
}

/** An optional epoch: what a `subscribed` event said. */
export function parseEpoch(value: string | undefined | null): string | undefined {
  if (value === undefined || value === null || value === "") return undefined;
  if (!EPOCH.test(value)) throw new RelayError("invalid_argument", "epoch must be 1-64 characters of A-Z a-z 0-9 _ -");
  return value;
}

/** An optional yes/no query flag (`?presence=1`): absent, "", "0" or "false" is no; "1" or "true" is yes. */
export function parseFlag(value: string | undefined | null, name: string): boolean {
  if (value === undefined || value === null || value === "" || value === "0" || value === "false") return false;
  if (value === "1" || value === "true") return true;
  throw new RelayError("invalid_argument", `${name} must be 1, true, 0 or false`);
}

/** A transport label ("websocket", "sse", "connect", ...): data the room reports, never interprets. */
export function parseVia(value: string | undefined | null): string {
  if (!value || !VIA.test(value)) throw new RelayError("invalid_argument", "via must be 1-16 characters of a-z 0-9 -");
  return value;
}

/** What a client asks to publish, from any transport, before the rules. */
export interface PublishInput {
  text: unknown;
  id?: unknown;
  user?: unknown;
}

/** A publish that passed the rules. */
export interface Publish {
  text: string;
  id: string;
  user: string;
}

/**
 * Checks a publish against the rules. `user` names a publisher who gave no name; when `fixed` (a
 * token's `sub`), it is the name whatever the client sent.
 */
export function parsePublish(
  input: PublishInput,
  maxMessageBytes: number,
  user: { name: string; fixed: boolean },
): Publish {
  const text = parseText(input.text, maxMessageBytes);
  const id = parseId(input.id);
  const given = parseUser(input.user);
  return { text, id, user: user.fixed ? user.name : (given ?? user.name) };
}
