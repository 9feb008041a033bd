/**
 * The client's engine, the same for every transport: the connection loop (connect, lose,
 * back off, resume from the last offset and epoch), the one place events are deduplicated and
 * ordered (a message is delivered only when its seq is past the last one delivered), presence,
 * the publish queue and token refresh. Transports only move bytes (transports/*.ts).
 */
import type { End, Session, Transport, TransportConfig, TransportFactory, Wire } from "../transports/transport.js";
import type {
  ClientEvents,
  ClientOptions,
  ClientSnapshot,
  ConnectionState,
  DisconnectReason,
  Member,
  RelayClient,
  RelayGap,
  TransportName,
} from "../types.js";
import { backoff } from "./backoff.js";
import { retryable } from "./codes.js";
import { emitter, reportError } from "./emitter.js";
import { RelayError } from "./errors.js";
import { relayEvent } from "./events.js";
import { LONE_SURROGATE, newId, PublishQueue } from "./queue.js";
import { store } from "./state.js";
import { tokens as tokenSource } from "./token.js";

/** A connection that lasted this long resets the backoff: the next loss reconnects fast again. */
const STABLE_MS = 5_000;
/** How long a WebSocket refresh may wait for `refreshed` before the client reconnects instead. */
const REFRESH_ANSWER_MS = 10_000;

/** One open session and the transport it belongs to. */
interface Entry {
  t: Transport;
  s: Session;
  /** When it got `subscribed` (0: not yet). */
  connectedAt: number;
  /** The token it was opened (or last refreshed) with. */
  token: string | undefined;
}

export function createRelayClient(
  options: ClientOptions,
  factories: Partial<Record<TransportName, TransportFactory>>,
): RelayClient {
  const mode = options.transport ?? "websocket";
  if (mode === "auto" ? !factories.websocket || !factories.sse : !factories[mode]) {
    throw new RelayError("invalid_argument", `transport "${mode}" is not available from this entry point`);
  }
  const base = new URL(options.url.replace(/^ws/, "http"));
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  const config: TransportConfig = {
    base: base.href,
    room: options.room,
    // Called through globalThis: a browser's fetch throws when called as another object's method.
    fetch: options.fetch ?? ((input, init) => globalThis.fetch(input, init)),
    WebSocket: options.WebSocket,
  };
  const presence = !!options.presence;
  const tokens = tokenSource(options.token, options.refreshBeforeMs);
  const reconnectDelay = backoff(options.backoff?.initialMs, options.backoff?.maxMs);
  const publishDelay = backoff(options.backoff?.initialMs, options.backoff?.maxMs);
  const queue = new PublishQueue(options.maxQueued ?? 100);
  const events = emitter<ClientEvents>(reportError);
  const built = new Map<TransportName, Transport>();

  let user = options.user;
  /** The resume point: the last offset delivered (undefined: live only, before the first `subscribed`) and its epoch. */
  let since = options.since;
  let epoch = options.epoch ?? "";
  let members: Member[] = [];
  let closed = false;
  /** "auto": the fallback, once SSE worked where WebSocket did not (sticky). */
  let fallback: TransportName | undefined;
  /** "auto": the next attempt tries SSE, because a WebSocket could not be opened. */
  let probing = false;
  let everConnected = false;
  /** Bumped by every (re)connect: an older connect still waiting for its token gives up. */
  let generation = 0;
  let session: Entry | undefined;
  /** A session opened with a new token that replaces `session` once it is subscribed (SSE, Connect). */
  let renewal: Entry | undefined;
  /** The next connect must get a new token (the last one expired). */
  let staleToken = false;
  let refreshing = false;
  /** Publishing waits until then after a retryable refusal (rate_limited, ...). */
  let holdUntil = 0;
  /** An HTTP or Connect publish is in flight (they go one at a time, to keep their order). */
  let publishing = false;
  const timers: Record<
    "reconnect" | "refresh" | "refreshAnswer" | "publish",
    ReturnType<typeof setTimeout> | undefined
  > = { reconnect: undefined, refresh: undefined, refreshAnswer: undefined, publish: undefined };
  const stop = (name: keyof typeof timers) => {
    clearTimeout(timers[name]);
    timers[name] = undefined;
  };
  const later = (name: keyof typeof timers, ms: number, fn: () => void) => {
    stop(name);
    timers[name] = setTimeout(fn, ms);
  };

  const current = (): TransportName => (mode === "auto" ? (fallback ?? (probing ? "sse" : "websocket")) : mode);
  const transport = (name: TransportName): Transport => {
    const t = built.get(name) ?? (factories[name] as TransportFactory)(config);
    built.set(name, t);
    return t;
  };

  const snap = store(
    {
      state: "connecting",
      transport: current(),
      reconnects: 0,
      lastSeq: since ?? 0,
      epoch,
      pending: 0,
      members,
    },
    reportError,
  );

  /** Changes the connection state (with anything else that changes with it) and tells "state" listeners. */
  const setState = (
    state: ConnectionState,
    reason?: DisconnectReason,
    transportName = snap.get().transport,
    more: Partial<ClientSnapshot> = {},
  ) => {
    const before = snap.get();
    snap.set({ ...more, state, reason, transport: transportName });
    const after = snap.get();
    if (after.state !== before.state || after.reason !== before.reason || after.transport !== before.transport) {
      events.emit("state", after);
    }
  };
  const syncPending = () => snap.set({ pending: queue.size });

  // ---- connecting and losing connections ----

  async function connect(): Promise<void> {
    stop("reconnect");
    if (closed) return;
    const mine = ++generation;
    const name = current();
    setState("connecting", undefined, name);
    let token: string | undefined;
    try {
      token = await tokens.get(staleToken);
      staleToken = false;
    } catch (e) {
      if (mine === generation && !closed) {
        lost(undefined, { code: "token_unavailable", message: `the token function failed: ${e}`, reconnect: true });
      }
      return;
    }
    if (mine !== generation || closed) return;
    session = open(transport(name), token);
  }

  function open(t: Transport, token: string | undefined): Entry {
    const entry = { t, connectedAt: 0, token } as Entry;
    entry.s = t.open({ since, epoch: epoch || undefined, user, token, presence }, sinkFor(entry));
    return entry;
  }

  function sinkFor(entry: Entry) {
    return {
      events(list: Wire[]) {
        if (entry === renewal && list[0]?.kind === "subscribed") promote();
        if (entry === session) receive(entry, list);
      },
      ack(event: Wire, duplicate: boolean) {
        if (queue.acked(event, duplicate)) {
          publishDelay.reset();
          syncPending();
        }
      },
      refused(id: string, code: string, message: string) {
        if (id === "" && refreshing) return refreshFailed();
        const p = queue.find(id);
        if (!p) return;
        if (retryable(code)) {
          // A rate limit (or the like): this one and everything after it wait, in order.
          p.sent = false;
          hold();
        } else {
          queue.fail(p, new RelayError(code, message));
          syncPending();
        }
      },
      refreshed() {
        if (entry !== session) return;
        refreshing = false;
        stop("refreshAnswer");
        scheduleRefresh();
      },
      ended(end: End) {
        if (entry === renewal) {
          // The replacement failed; the old session goes on and reconnects by itself when it ends.
          renewal = undefined;
          return;
        }
        if (entry !== session) return;
        session = undefined;
        lost(entry, end);
      },
    };
  }

  /** The renewal is subscribed: it takes over, and the old session is closed. */
  function promote(): void {
    const old = session;
    session = renewal;
    renewal = undefined;
    old?.s.close();
    queue.unsend();
  }

  function lost(entry: Entry | undefined, end: End): void {
    stop("refresh");
    stop("refreshAnswer");
    refreshing = false;
    const next = renewal;
    renewal = undefined;
    if (end.publishFault) {
      // The socket was closed for the frame of the oldest publish not yet answered: that one fails.
      const culprit = queue.items.find((p) => p.sent);
      if (culprit) {
        queue.fail(culprit, new RelayError(end.code, end.message));
        end = { ...end, reconnect: true };
      }
    }
    queue.unsend();
    syncPending();
    if (closed) return;
    if (next && end.reconnect) {
      // A replacement with a new token is on its way already (it was late): it takes over.
      session = next;
      setState("connecting");
      return;
    }
    next?.s.close();
    if (entry?.connectedAt && Date.now() - entry.connectedAt >= STABLE_MS) reconnectDelay.reset();
    const name = entry?.t.name;
    if (mode === "auto" && !fallback) {
      if (name === "websocket" && end.beforeOpen) {
        // No WebSocket could be opened (a proxy that refuses upgrades?): try SSE at once.
        probing = true;
        void connect();
        return;
      }
      probing = false;
    }
    if (!end.reconnect || (end.code === "token_expired" && !tokens.renewable)) {
      end_(end);
      return;
    }
    if (end.code === "token_expired") staleToken = true;
    const delay = end.code === "replay_paused" ? 0 : reconnectDelay.next();
    setState("disconnected", { code: end.code, message: end.message });
    later("reconnect", delay, connect);
  }

  /** The relay ended the client for good (a refused token, no right, removed by an admin). */
  function end_(end: End): void {
    closed = true;
    shutdown(new RelayError(end.code, end.message));
    setState("closed", { code: end.code, message: end.message });
  }

  function shutdown(e: RelayError): void {
    (globalThis as { removeEventListener?: (t: string, l: () => void) => void }).removeEventListener?.(
      "online",
      online,
    );
    generation++;
    for (const name of Object.keys(timers) as (keyof typeof timers)[]) stop(name);
    session?.s.close();
    renewal?.s.close();
    session = renewal = undefined;
    queue.failAll(e);
    syncPending();
  }

  // ---- what arrives ----

  /**
   * Events in arrival order. The snapshot is updated once for all of them (a replay's batch is one
   * render, not one per message), except that "subscribed" makes the client "connected" at once.
   */
  function receive(entry: Entry, list: Wire[]): void {
    for (const w of list) {
      switch (w.kind) {
        case "subscribed": {
          if (since === undefined || !epoch) {
            epoch = w.epoch;
            // A live-only subscription starts at the head of the log.
            since ??= w.resumeAfter;
          }
          // Presence starts over: the room sends a `join` for everyone connected now.
          if (presence && members.length > 0) members = [];
          entry.connectedAt = Date.now();
          if (mode === "auto" && entry.t.name === "sse") fallback = "sse";
          probing = false;
          const reconnects = snap.get().reconnects + (everConnected ? 1 : 0);
          everConnected = true;
          setState("connected", undefined, entry.t.name, { lastSeq: since, epoch, members, reconnects });
          scheduleRefresh();
          // A publish held back after a failure (a network error while offline) goes now: the
          // relay is reachable again, and waiting out the hold would only delay it.
          releaseHold();
          pump();
          break;
        }
        case "gap":
          // The relay continues after resumeAfter (just before the first retained event; for an
          // epoch gap, in the new epoch): so does the client.
          epoch = w.epoch;
          since = w.resumeAfter;
          events.emit("gap", {
            reason: w.reason as RelayGap["reason"],
            text: w.text,
            resumeAfter: w.resumeAfter,
            firstSeq: w.firstSeq,
            lastSeq: w.lastSeq,
          });
          break;
        case "message":
          if (w.epoch !== epoch) {
            // A new epoch without a gap (not expected from the relay): its offsets start over.
            epoch = w.epoch;
            since = 0;
          }
          // Deduplication: a replay overlapping what was delivered, a renewal's replay, a
          // retried publish's event: only what is past the last offset delivered goes out.
          if (w.seq > (since ?? 0)) {
            since = w.seq;
            events.emit("message", relayEvent(w));
          }
          break;
        case "join":
        case "leave": {
          // Not log events: the resume point stays where it is.
          if (!presence) break;
          const m = w.member ?? { user: w.user, connections: 0, transports: [], connectedAtMs: 0 };
          members = members.filter((x) => x.user !== m.user);
          if (w.kind === "join") members.push(m);
          events.emit(w.kind, m);
          break;
        }
        // "heartbeat" (Connect) keeps the stream alive and says nothing.
      }
    }
    snap.set({ lastSeq: since ?? 0, epoch, members });
  }

  // ---- tokens ----

  function scheduleRefresh(): void {
    stop("refresh");
    const at = tokens.renewable ? tokens.refreshAt() : undefined;
    if (at === undefined || closed) return;
    // At least a second apart, should the token function keep returning a token about to expire.
    later("refresh", Math.max(at - Date.now(), 1000), renew);
  }

  /** A new token before the current one expires: in place on a WebSocket, by a new session otherwise. */
  async function renew(): Promise<void> {
    const entry = session;
    if (!entry || closed) return;
    let token: string | undefined;
    try {
      // A publish over HTTP or Connect may have fetched the new token already: use that one, and
      // ask for another only when the session still holds the current token.
      token = await tokens.get();
      if (token === entry.token) token = await tokens.get(true);
    } catch {
      later("refresh", 5_000, renew);
      return;
    }
    if (entry !== session || closed) return;
    if (entry.s.refresh && token) {
      refreshing = true;
      entry.token = token;
      entry.s.refresh(token);
      later("refreshAnswer", REFRESH_ANSWER_MS, refreshFailed);
    } else {
      // Make before break: the old session keeps delivering until the new one is subscribed,
      // and the new one resumes from the last offset, so nothing is lost or delivered twice.
      renewal?.s.close();
      renewal = open(entry.t, token);
    }
  }

  function refreshFailed(): void {
    refreshing = false;
    stop("refreshAnswer");
    const entry = session;
    if (!entry || closed) return;
    // The relay kept the old token; a new session with the new one replaces this one.
    renewal?.s.close();
    void tokens.get().then((token) => {
      if (entry === session && !closed && !renewal) renewal = open(entry.t, token);
    }, reportError);
  }

  // ---- publishing ----

  /** After a retryable refusal: publishing pauses for a backoff delay, then goes on in order. */
  function hold(): void {
    const delay = publishDelay.next();
    holdUntil = Date.now() + delay;
    later("publish", delay, () => {
      // Timers may fire a millisecond early: the wait is over when this runs.
      holdUntil = 0;
      pump();
    });
  }

  function releaseHold(): void {
    stop("publish");
    holdUntil = 0;
  }

  function pump(): void {
    const entry = session;
    if (closed || !entry || !entry.connectedAt || snap.get().state !== "connected") return;
    if (Date.now() < holdUntil) return;
    const t = entry.t;
    if (!t.publish) {
      // WebSocket: every unsent publish goes now, in order; acks come back by id.
      for (const p of queue.items) {
        if (p.sent) continue;
        p.sent = true;
        entry.s.publish?.(p.input);
      }
      return;
    }
    // HTTP / Connect: one request at a time, so publishes are stored in the order they were made.
    // The request does not depend on the stream: a reconnect meanwhile leaves it alone.
    const p = queue.items[0];
    if (publishing || !p) return;
    publishing = true;
    const publish = t.publish.bind(t);
    void (async () => {
      try {
        const { event, duplicate } = await publish(p.input, await tokens.get());
        queue.acked({ ...event, id: p.input.id }, duplicate);
        publishDelay.reset();
      } catch (e) {
        const err = e instanceof RelayError ? e : new RelayError("network", String(e), true);
        if (queue.items.includes(p)) {
          const expired = err.code === "token_expired";
          if (expired && tokens.renewable) await tokens.get(true).catch(() => undefined);
          if (err.retryable && !(expired && !tokens.renewable)) hold();
          else queue.fail(p, err);
        }
      }
      publishing = false;
      syncPending();
      pump();
    })();
  }

  // ---- the API ----

  const api: RelayClient = {
    on: events.on,
    subscribe: snap.subscribe,
    getSnapshot: snap.get,
    publish(text, opts = {}) {
      if (closed) return Promise.reject(new RelayError("closed", "the client is closed"));
      if (typeof text !== "string" || text === "") {
        return Promise.reject(new RelayError("invalid_argument", "text must be a non-empty string"));
      }
      if (LONE_SURROGATE.test(text)) {
        return Promise.reject(new RelayError("invalid_encoding", "text has a lone surrogate (not valid Unicode)"));
      }
      const done = queue.add({ text, id: opts.id ?? newId(), user });
      syncPending();
      pump();
      return done;
    },
    async history(opts = {}) {
      if (closed) throw new RelayError("closed", "the client is closed");
      return transport(current()).history(opts.since ?? 0, opts.limit ?? 0, await tokens.get());
    },
    async presence() {
      if (closed) throw new RelayError("closed", "the client is closed");
      return transport(current()).presence(await tokens.get());
    },
    setUser(name) {
      if (name === user) return;
      user = name;
      if (closed) return;
      // A new connection under the new name, resuming from the last offset: the conversation is kept.
      session?.s.close();
      renewal?.s.close();
      session = renewal = undefined;
      queue.unsend();
      void connect();
    },
    close() {
      if (closed) return;
      closed = true;
      shutdown(new RelayError("closed", "the client was closed"));
      setState("closed");
    },
  };
  // A browser back online: waiting out the backoff would only delay the reconnect.
  const online = () => {
    if (timers.reconnect) {
      reconnectDelay.reset();
      void connect();
    }
  };
  const target = globalThis as { addEventListener?: (t: string, l: () => void) => void };
  target.addEventListener?.("online", online);
  void connect();
  return api;
}
