/**
 * The one slow-consumer policy, for every subscriber on every transport: a subscriber may leave
 * only so much unconfirmed; past that it is closed as too slow (4003) and resumes from its last
 * offset, so the room never holds an unbounded backlog for it.
 *
 * workerd has no `WebSocket.bufferedAmount` (cloudflare/workerd#988): a `send()` queues in the
 * process without bound and without telling how far the reader is. So reading is confirmed from
 * the other end: every `maxBehind / 8` bytes the room sends a ping with a random id, and the
 * client answers it with a pong once it has read it (relay.v1.json/proto clients; the Worker-side
 * bridge of an SSE or Connect stream answers once its client's stream has taken every byte before
 * the ping). Plain-mode clients cannot answer pings: any frame they send confirms what was sent
 * before it (an empty frame publishes nothing).
 *
 * The bound, in bytes: a subscriber more than `maxBehind` behind is closed once a ping has waited
 * `graceMs` for its answer, and one more than twice that behind is closed at once. The grace is
 * for confirmations that arrive late through no fault of the reader: under `wrangler dev`, a
 * reader's frames can wait in the local proxy while another socket floods the room (measured:
 * pongs processed in bursts, several MB late; docs/runtime-notes.md).
 *
 * Kept in memory only: after hibernation a socket starts over at zero unconfirmed bytes, which
 * is right, since a hibernated room has had nothing to send.
 */

interface State {
  /** Bytes sent so far. */
  sent: number;
  /** Bytes the client has confirmed reading. */
  confirmed: number;
  /** `sent` at which the next ping is due. */
  nextPing: number;
  /** Pings not yet answered: their ids, the bytes sent before each, and when each was sent. */
  pings: { id: number; at: number; sentAtMs: number }[];
  /** Past the bound: the socket is being closed, nothing more is sent. */
  cut: boolean;
  /** Over the bound within a ping's grace: the room checks again when the grace is over. */
  watched: boolean;
}

/**
 * What a send means for a socket: go ahead (and ping with this id; and, with `recheck`, check it
 * again after that many ms, since it is over the bound within a ping's grace), or don't: it is
 * too far behind (`first` the first time, when it is to be closed).
 */
export type Verdict = { ok: true; ping?: number; recheckMs?: number } | { ok: false; first: boolean };

/** Pings outstanding at most: more than this many unanswered means far more than maxBehind unread. */
const MAX_PINGS = 24;

export class Flow {
  readonly #state = new WeakMap<WebSocket, State>();
  readonly #pingEvery: number;

  constructor(
    readonly maxBehind: number,
    readonly graceMs = 2000,
  ) {
    this.#pingEvery = Math.max(1, Math.floor(maxBehind / 8));
  }

  #of(ws: WebSocket): State {
    let s = this.#state.get(ws);
    if (!s) {
      s = { sent: 0, confirmed: 0, nextPing: this.#pingEvery, pings: [], cut: false, watched: false };
      this.#state.set(ws, s);
    }
    return s;
  }

  /** Accounts a frame of `bytes` about to be sent to `ws` at `nowMs`; `canPing` is false for plain mode. */
  send(ws: WebSocket, bytes: number, canPing: boolean, nowMs = Date.now()): Verdict {
    const s = this.#of(ws);
    if (s.cut || this.#tooFar(s, s.sent + bytes - s.confirmed, canPing, nowMs)) {
      const first = !s.cut;
      s.cut = true;
      return { ok: false, first };
    }
    s.sent += bytes;
    // Over the bound, within the grace: nothing may be sent for a while, so the room must come
    // back to it (once per stretch over the bound).
    let recheckMs: number | undefined;
    if (s.sent - s.confirmed > this.maxBehind && !s.watched) {
      s.watched = true;
      recheckMs = this.graceMs;
    }
    if (!canPing || s.sent < s.nextPing || s.pings.length >= MAX_PINGS) return { ok: true, recheckMs };
    s.nextPing = s.sent + this.#pingEvery;
    const id = crypto.getRandomValues(new Uint32Array(1))[0];
    s.pings.push({ id, at: s.sent, sentAtMs: nowMs });
    return { ok: true, ping: id, recheckMs };
  }

  /** Whether `ws` is now too far behind, with nothing more to send (a recheck after the grace). */
  check(ws: WebSocket, canPing: boolean, nowMs = Date.now()): Verdict {
    const s = this.#state.get(ws);
    if (!s || s.cut) return s ? { ok: false, first: false } : { ok: true };
    const behind = s.sent - s.confirmed;
    if (this.#tooFar(s, behind, canPing, nowMs)) {
      s.cut = true;
      return { ok: false, first: true };
    }
    // Still over the bound (a later ping's grace is not over): check again then.
    s.watched = behind > this.maxBehind;
    return { ok: true, recheckMs: s.watched ? this.graceMs : undefined };
  }

  #tooFar(s: State, behind: number, canPing: boolean, nowMs: number): boolean {
    if (behind <= this.maxBehind) return false;
    if (behind > 2 * this.maxBehind) return true;
    // Over the bound: too far once the oldest unanswered ping has had its grace. Plain mode has
    // none (there is no answer to wait for); with no ping out yet, this send is followed by one.
    if (!canPing) return true;
    const oldest = s.pings[0];
    return oldest !== undefined && nowMs - oldest.sentAtMs >= this.graceMs;
  }

  /** A pong: confirms the bytes before the ping it answers (unknown ids are ignored). */
  pong(ws: WebSocket, id: number): void {
    const s = this.#state.get(ws);
    const i = s?.pings.findIndex((p) => p.id === id) ?? -1;
    if (!s || i === -1) return;
    s.confirmed = Math.max(s.confirmed, s.pings[i].at);
    s.pings.splice(0, i + 1);
    if (s.sent - s.confirmed <= this.maxBehind) s.watched = false;
  }

  /** Confirms everything sent so far (a plain-mode client's frame). */
  confirmAll(ws: WebSocket): void {
    const s = this.#state.get(ws);
    if (s) s.confirmed = s.sent;
  }
}
