/**
 * What the relay must refuse, written from its documentation (README "Routes", "Errors",
 * "Guarantees"; docs/auth.md), not imported from src/, so the fuzzer checks the code against the
 * contract. Its one use: the fuzzer never sends a publish that the relay may store (every
 * generated input that might be a valid publish is replaced by another one), so after the run the
 * rooms the fuzzer published into must be empty. Where the contract leaves room (an id holding a
 * space: "printable ASCII"), an input counts as one that may be stored, and is not sent.
 */
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { ClientFrameSchema, PublishRequestSchema } from "../../src/gen/relay/v1/relay_pb";

/** Room names: 1-64 characters of A-Z a-z 0-9 . _ ~ -, not `.` or `..` (README "Routes"). */
export const ROOM_NAME = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,64}$/;

export function validRoom(v: unknown): boolean {
  return typeof v === "string" && ROOM_NAME.test(v);
}

/** Whether `s` is well-formed UTF-16 (no lone surrogate): String.isWellFormed, which es2023 typings lack. */
export function wellFormed(s: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

/** A message text: a non-empty well-formed string of at most `max` UTF-8 bytes. */
export function textMayPass(v: unknown, max: number): boolean {
  return typeof v === "string" && v.length > 0 && wellFormed(v) && Buffer.byteLength(v) <= max;
}

/** Ids: none, or 1-128 printable ASCII characters (a space counted as printable, to be safe). */
export function idMayPass(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return true;
  return typeof v === "string" && /^[\x20-\x7e]{1,128}$/.test(v);
}

/** User names: none, or 1-64 characters (code points), no control characters, well-formed. */
export function userMayPass(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return true;
  return typeof v === "string" && wellFormed(v) && /^[^\p{Cc}]{1,64}$/u.test(v);
}

export interface PublishFields {
  text?: unknown;
  id?: unknown;
  user?: unknown;
}

/** Whether a publish with these fields may be stored. */
export function publishMayPass(p: PublishFields, max: number): boolean {
  return textMayPass(p.text, max) && idMayPass(p.id) && userMayPass(p.user);
}

const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

function utf8OrUndefined(bytes: Uint8Array): string | undefined {
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

/** The media type of a Content-Type header: before any `;`, trimmed, lower case. */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

/**
 * `POST /rooms/:room/messages`: JSON `{"text","id"?,"user"?}` (string fields) or `text/plain` with
 * the id in `Idempotency-Key` and the user in `?user=`. Whether the relay may store it.
 */
export function httpPublishMayPass(
  contentType: string | undefined,
  body: Uint8Array,
  extra: { idempotencyKey?: string; user?: string },
  max: number,
): boolean {
  const type = mediaType(contentType);
  if (type !== "application/json" && type !== "text/plain") return false;
  const text = utf8OrUndefined(body);
  if (text === undefined) return false;
  let fields: PublishFields = { text };
  if (type === "application/json") {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return false;
    }
    if (typeof json !== "object" || json === null || Array.isArray(json)) return false;
    const o = json as Record<string, unknown>;
    for (const k of ["text", "id", "user"]) if (o[k] !== undefined && typeof o[k] !== "string") return false;
    fields = o;
  }
  return publishMayPass(
    { text: fields.text, id: fields.id ?? extra.idempotencyKey, user: fields.user ?? extra.user },
    max,
  );
}

/** A ClientFrame (decoded) that may publish. */
function frameMayPass(frame: ReturnType<typeof fromBinary<typeof ClientFrameSchema>>, max: number): boolean {
  if (frame.frame.case !== "publish") return false;
  return publishMayPass(frame.frame.value, max);
}

/** A WebSocket frame in `mode` (plain, json, proto): whether it may publish. */
export function wsFrameMayPass(mode: "plain" | "json" | "proto", data: Uint8Array, binary: boolean, max: number) {
  // A frame over the text limit plus 1 KiB is refused whole (README "Errors", too_large).
  if (data.length > max + 1024) return false;
  const text = binary ? undefined : utf8OrUndefined(data);
  if (mode === "plain") return text !== undefined && text !== "" && !text.includes("\uFFFD") && textMayPass(text, max);
  if (mode === "json") {
    if (text === undefined || text.includes("\uFFFD")) return false;
    try {
      return frameMayPass(fromJsonString(ClientFrameSchema, text), max);
    } catch {
      return false;
    }
  }
  if (!binary) return false;
  try {
    return frameMayPass(fromBinary(ClientFrameSchema, data), max);
  } catch {
    return false;
  }
}

/** A Connect PublishRequest in binary: whether it may be stored (its room valid, its fields too). */
export function protoPublishMayPass(bytes: Uint8Array, max: number): boolean {
  try {
    const m = fromBinary(PublishRequestSchema, bytes);
    return validRoom(m.room) && publishMayPass(m, max);
  } catch {
    return false;
  }
}

/** What the documents say of a value: it must be accepted, refused, or they leave it open. */
export type Rule = "valid" | "invalid" | "either";

/**
 * An offset or page size (`since`, `limit`, `Last-Event-ID`): none (absent or empty), or an
 * integer from 0 to 2^53-1 in ASCII digits (README "Routes" and "Errors": "bad since/limit").
 * More than 16 digits for a number in range (zero-padded) is left open.
 */
export function offsetRule(v: string | undefined): Rule {
  if (v === undefined || v === "") return "valid";
  if (!/^[0-9]+$/.test(v) || BigInt(v) > 2n ** 53n - 1n) return "invalid";
  return v.length > 16 ? "either" : "valid";
}

/** An epoch: none is fine; its format is not documented, so any other value is left open. */
export function epochRule(v: string | undefined): Rule {
  return v === undefined || v === "" ? "valid" : "either";
}

/** The rule of a request with several values: refused if any must be, open if any is. */
export function allOf(...rules: Rule[]): Rule {
  if (rules.includes("invalid")) return "invalid";
  return rules.includes("either") ? "either" : "valid";
}
