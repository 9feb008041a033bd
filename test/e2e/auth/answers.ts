/**
 * docs/auth.md's answers, read back from each transport's wire form, written down here from the
 * contract (not from src/errors.ts, which is what is under test): an HTTP status with its JSON
 * error code, a WebSocket close code, a Connect code (and message, for "token expired"). Anything
 * else comes back as a description of what the wire said, so a failed assertion shows it.
 */
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ChatEventJson, type ErrorJson, getJson, type HistoryJson, type HttpResult, post } from "../clients";
import { jsonish } from "../clients/jsonish";

/** How long a refusal or a first event may take to arrive. */
export const ANSWER_MS = 3000;

/** The Authorization header for `token` (none for undefined). */
export function bearer(token: string | undefined): Record<string, string> {
  return token === undefined ? {} : { Authorization: `Bearer ${token}` };
}

/** The answers of docs/auth.md, by the name the contract gives them. */
export type AuthAnswer = "unauthenticated" | "token_expired" | "permission_denied";

/** docs/auth.md: HTTP status of each answer (and of the abuse limits). */
export const HTTP_STATUS: Record<string, number> = {
  unauthenticated: 401,
  token_expired: 401,
  permission_denied: 403,
  rate_limited: 429,
  too_many_connections: 429,
  invalid_argument: 400,
};

/** docs/auth.md: WebSocket close code of each answer. */
export const CLOSE_CODE: Record<string, number> = {
  unauthenticated: 4540,
  token_expired: 4440,
  permission_denied: 1008,
  removed: 4509,
  too_many_connections: 4004,
};

/** An HTTP error answer as the contract names it, when status and body code agree; else what it was. */
export function httpAnswer(status: number, body: unknown): string {
  const code = (body as { error?: ErrorJson } | null)?.error?.code;
  if (code !== undefined && HTTP_STATUS[code] === status) return code;
  return `HTTP ${status} ${jsonish(body).slice(0, 300)}`;
}

/** A WebSocket close as the contract names it; else what it was. */
export function closeAnswer(close: { code: number; reason: string }): string {
  const name = Object.keys(CLOSE_CODE).find((k) => CLOSE_CODE[k] === close.code);
  return name ?? `closed ${close.code} ${JSON.stringify(close.reason)}`;
}

/**
 * A Connect error as the contract names it: `unauthenticated` (and `token_expired` when its
 * message says "token expired", as docs/auth.md has it), `permission_denied`; else its code and
 * message.
 */
export function connectAnswer(e: unknown): string {
  const err = ConnectError.from(e);
  if (err.code === Code.Unauthenticated) {
    if (/token expired/i.test(err.rawMessage)) return "token_expired";
    // An expiry said in other words than the contract's shows as itself.
    return /expired/i.test(err.rawMessage) ? `unauthenticated: ${JSON.stringify(err.rawMessage)}` : "unauthenticated";
  }
  if (err.code === Code.PermissionDenied) return "permission_denied";
  return `connect ${Code[err.code]}: ${err.rawMessage}`;
}

/** POST a JSON publish with a token (undefined: none) and extra headers. */
export function publishWith(
  baseUrl: string,
  room: string,
  token: string | undefined,
  msg: { text: string; id?: string; user?: string },
  headers: Record<string, string> = {},
): Promise<HttpResult<ChatEventJson>> {
  return post<ChatEventJson>(baseUrl, `/rooms/${room}/messages`, JSON.stringify(msg), {
    "Content-Type": "application/json",
    ...bearer(token),
    ...headers,
  });
}

/** Publishes a message with `token` and fails unless it is stored (201). */
export async function mustPublish(baseUrl: string, room: string, token: string | undefined, text?: string) {
  const r = await publishWith(baseUrl, room, token, { text: text ?? `seed ${randomUUID()}`, id: randomUUID() });
  if (r.status !== 201) throw new Error(`publish into ${room}: HTTP ${r.status} ${jsonish(r.body)}`);
  return r.body;
}

/** The whole retained log of a room, read with `token` (one page: the tests' rooms are small). */
export async function historyWith(baseUrl: string, room: string, token: string | undefined): Promise<ChatEventJson[]> {
  const r = await getJson<HistoryJson>(baseUrl, `/rooms/${room}/messages?since=0`, bearer(token));
  if (r.status !== 200) throw new Error(`history of ${room}: HTTP ${r.status} ${jsonish(r.body)}`);
  if (r.body.hasMore) throw new Error(`history of ${room}: more than one page`);
  return r.body.events;
}
