/**
 * Room-name tricks, one slice per transport: `..`, `%2e%2e`, `%2F`, double encoding, raw and
 * encoded Unicode, very long names, empty names, encoded NUL, invalid percent escapes, and paths
 * around them (extra segments, `/./`, `//`). HTTP, SSE and WebSocket put them in the path as
 * written (no client-side normalisation); Connect puts the decoded forms in the `room` field.
 * Nothing here publishes: a POST carries an empty text, which no room stores.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  HistoryRequestSchema,
  PresenceRequestSchema,
  PublishRequestSchema,
  SubscribeRequestSchema,
} from "../../../src/gen/relay/v1/relay_pb";
import { wellFormedCall } from "../connect-wire";
import { type Rule, validRoom } from "../oracle";
import { ALNUM, type Rng } from "../prng";
import {
  connectAttempt,
  expectFrom,
  type FuzzContext,
  httpAttempt,
  pathBytes,
  type Slice,
  show,
  sseAttempt,
  upgradeAttempt,
} from "../slice";
import { awkwardString } from "./strings";

/** Room segments as they go into a path. */
const PATH_TRICKS = [
  "..",
  ".",
  "%2e%2e",
  "%2E%2E",
  "%2e",
  ".%2e",
  "%2e.",
  "..%2f..",
  "..%2F..%2Fhealthz",
  "%2F",
  "a%2Fb",
  "a%2fb",
  "%252e%252e",
  "%252F",
  "%C3%BC",
  "%00",
  "a%00b",
  "%ff",
  "%",
  "%zz",
  "a%",
  "%e2%80%ae",
  "%ef%bb%bf",
  "%c0%ae%c0%ae",
  "%u002e",
  "%20",
  "+",
  "~",
  "a;b=c",
  "..;",
  "%3F",
  "%23",
  "\\",
  "%5c",
  "a..b",
  "-",
  "CON",
  "%41".repeat(64),
  "%41".repeat(65),
  "",
];

/** Room values for Connect's `room` field (already decoded). */
const FIELD_TRICKS = [
  "..",
  ".",
  "../x",
  "a/b",
  "/",
  "",
  "\u0000",
  "a\u0000b",
  "ü",
  "%2e%2e",
  " a",
  "a ",
  "a\n",
  "\ud800",
  "lobby\u202e",
  "．．",
];

function pathRoom(rng: Rng): string {
  return rng.weighted<() => string>([
    [5, () => rng.pick(PATH_TRICKS)],
    [2, () => rng.chars(rng.pick([65, 100, 1000, 10_000, 60_000]), ALNUM)],
    [2, () => pathBytes(awkwardString(rng, rng.int(1, 8)), "?#")],
    [2, () => rng.chars(rng.int(1, 12), `${ALNUM}._~-%/\\;:@!$&'()*+,=[]`)],
    [1, () => `${rng.pick(PATH_TRICKS)}${rng.pick(PATH_TRICKS)}`],
  ])();
}

function fieldRoom(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => rng.pick(FIELD_TRICKS)],
    [2, () => rng.chars(rng.pick([65, 100, 1000, 3000]), ALNUM)],
    [2, () => awkwardString(rng, rng.int(1, 8))],
    [1, () => decodeURIComponentSafe(rng.pick(PATH_TRICKS))],
  ])();
}

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The path around a room segment: usually `/rooms/<r>/<route>`, sometimes bent. */
function shape(rng: Rng, r: string, route: string): string {
  return rng.weighted<string>([
    [20, `/rooms/${r}/${route}`],
    [1, `/rooms/${r}`],
    [1, `/rooms/${r}/${route}/extra`],
    [1, `/rooms/${r}/./${route}`],
    [1, `//rooms/${r}/${route}`],
    [1, `/rooms/${r}/%2e%2e/${route}`],
    [1, `/rooms/x/../${r}/${route}`],
    [1, `/ROOMS/${r}/${route}`],
  ]);
}

/**
 * What the documents say of `/rooms/<r>/<route>`: the room name (percent-decoded) must be 1-64
 * characters of A-Z a-z 0-9 . _ ~ - or the request is a 400 (README "Routes"). A name that is a
 * dot segment ("." or "..", however encoded) is left open: URL normalisation may remove it first.
 */
function pathRule(path: string, r: string, route: string): Rule {
  if (path !== `/rooms/${r}/${route}`) return "either";
  let name: string;
  try {
    name = decodeURIComponent(r);
  } catch {
    return "invalid"; // a broken escape: whatever is left holds a "%"
  }
  if (name === "." || name === "..") return "either";
  return validRoom(name) ? "valid" : "invalid";
}

export function roomSlices(_ctx: FuzzContext): Slice[] {
  return [
    {
      name: "rooms http",
      make(rng) {
        const r = pathRoom(rng);
        const route = rng.pick(["messages", "presence", "stats", "post", "disconnect"]);
        if (route === "post" || route === "disconnect") {
          const path = shape(rng, r, route === "post" ? "messages" : "disconnect");
          const body = route === "post" ? '{"text":""}' : '{"user":"ann"}';
          return httpAttempt(`POST ${show(path)}`, {
            method: "POST",
            path,
            headers: { "Content-Type": "application/json" },
            body,
          });
        }
        const path = shape(rng, r, route);
        const a = httpAttempt(`GET ${show(path)}`, { method: "GET", path });
        a.expect = expectFrom(pathRule(path, r, route));
        return a;
      },
    },
    {
      name: "rooms sse",
      make(rng) {
        const r = pathRoom(rng);
        const path = shape(rng, r, "sse");
        const a = sseAttempt(`GET ${show(path)}`, path);
        a.expect = expectFrom(pathRule(path, r, "sse"));
        return a;
      },
    },
    {
      name: "rooms ws",
      make(rng) {
        const r = pathRoom(rng);
        const path = shape(rng, r, "ws");
        const a = upgradeAttempt(`upgrade ${show(path)}`, path);
        a.expect = expectFrom(pathRule(path, r, "ws"));
        return a;
      },
    },
    {
      name: "rooms connect",
      make(rng) {
        const room = fieldRoom(rng);
        const method = rng.pick(["Publish", "History", "Presence", "Subscribe"] as const);
        const grpcWeb = rng.chance(0.4);
        const binary = grpcWeb || rng.chance(0.5);
        const fields = {
          Publish: { room, text: "" },
          History: { room },
          Presence: { room },
          Subscribe: { room, since: "0" },
        }[method];
        const schema = {
          Publish: PublishRequestSchema,
          History: HistoryRequestSchema,
          Presence: PresenceRequestSchema,
          Subscribe: SubscribeRequestSchema,
        }[method];
        // A lone surrogate has no UTF-8 form: JSON carries it escaped; binary carries U+FFFD.
        const payload = binary
          ? toBinary(schema, create(schema, { ...fields, since: method === "Subscribe" ? 0n : undefined } as never))
          : Buffer.from(JSON.stringify(fields));
        const { kind, contentType, body } = wellFormedCall(method, payload, { binary, grpcWeb });
        const a = connectAttempt(`${method} room ${show(room)} (${contentType})`, {
          kind,
          method,
          contentType,
          body,
          binary,
        });
        // (A Publish here has an empty text: refused whatever the room.)
        a.expect = expectFrom(method === "Publish" || !validRoom(room) ? "invalid" : "valid");
        return a;
      },
    },
  ];
}
