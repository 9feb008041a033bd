/**
 * Who is calling, and may they: the one place the Worker reads a request's token (docs/auth.md).
 * `Authorization: Bearer` on every route; `?token=` only where browsers cannot set a header (the
 * WebSocket and SSE routes). Every route asks {@link authorize} before it touches a room, so a
 * refused request never creates or wakes one.
 */
import { type Action, anonymous, can, type Identity, type Principal, principal } from "../auth/rights";
import { verifyToken } from "../auth/token";
import { RelayError } from "../errors";
import type { Settings } from "../settings";

/** The client's address: Cloudflare's CF-Connecting-IP (locally, wrangler dev sets it too). */
function clientAddress(headers: Headers): string {
  return headers.get("CF-Connecting-IP") ?? "unknown";
}

/** The request's token: the Bearer header, or `?token=` where `queryAllowed`. */
function tokenOf(request: Request, queryAllowed: boolean): string | undefined {
  const header = request.headers.get("Authorization");
  if (header !== null) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw new RelayError("unauthenticated", "the Authorization header must be `Bearer <token>`");
    return m[1];
  }
  const query = new URL(request.url).searchParams.get("token");
  if (query === null) return undefined;
  if (!queryAllowed) {
    throw new RelayError(
      "invalid_argument",
      "?token= is read only on /ws and /sse: send the token as `Authorization: Bearer <token>`",
    );
  }
  return query;
}

/** The caller of `request`: its token's identity, or an anonymous one under ANONYMOUS_ACCESS. */
async function identify(request: Request, settings: Settings, queryAllowed = false): Promise<Identity> {
  const token = tokenOf(request, queryAllowed);
  if (token === undefined) return anonymous(settings.anonymousAccess, clientAddress(request.headers));
  return verifyToken(token, settings);
}

/** Throws the right refusal unless `who` may do `action` in `room`. */
function authorize(who: Identity, action: Action, room: string): void {
  if (can(who, action, room)) return;
  if (who.sub === undefined) {
    throw new RelayError(
      "unauthenticated",
      `a token is needed to ${action} here (anonymous clients may not: ANONYMOUS_ACCESS; docs/auth.md)`,
    );
  }
  throw new RelayError("permission_denied", `this token does not allow ${action} in room ${room}`);
}

/**
 * Identifies the caller of `request` and checks it may do `action` in `room` (and `also`, e.g. a
 * subscription that asks for presence events); the room's view of it.
 */
export async function admit(
  request: Request,
  settings: Settings,
  action: Action,
  room: string,
  opts: { queryToken?: boolean; name?: string; also?: Action } = {},
): Promise<Principal> {
  const who = await identify(request, settings, opts.queryToken);
  authorize(who, action, room);
  if (opts.also) authorize(who, opts.also, room);
  return principal(who, room, clientAddress(request.headers), opts.name);
}
