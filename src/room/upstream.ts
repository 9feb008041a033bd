/**
 * A fan-out shard's side of its subscription to the room's leader (see shards.ts): where the
 * shard is in the room's log, and the order in which pushes, gap fills and new subscribers'
 * openings are applied, so that every subscriber of the shard gets every event once, in order.
 *
 * - Pushes carry offsets. One that starts past the shard's position leaves a gap: the shard reads
 *   the missing events from the leader's log first (holding later pushes back meanwhile). If it
 *   cannot (they have left the log's retention, or the leader cannot be reached), it closes its
 *   subscribers with a code that tells them to resume by offset, which gives each of them exactly
 *   what it misses, or an explicit gap.
 * - A new subscriber's opening (subscribed, gap, replay) is computed by the leader at its current
 *   offset and sent in the push order, so the subscriber joins the shard's stream exactly there.
 *   One that arrives after later events (pushes reordered by a failure) is refused: the
 *   subscriber retries, and resumes from its offset.
 * - The position is kept in memory only: after hibernation the first push sets it again. A shard
 *   hibernates only when idle, when it has had every push sent to it.
 */
import type { EventData } from "../protocol/events";
import type { ShardOpening, ShardPush } from "./shards";

/** What the upstream asks of its room object. */
export interface UpstreamHost {
  /** Fans stored events out to the shard's subscribers. */
  fanOut(events: EventData[]): void;
  /**
   * Applies a subscriber's opening, now, at this point of the stream; `late`: the shard has
   * already fanned out events after the opening's offset (it arrived after them, through a new
   * stub after a failure), so the subscriber must be told to retry instead.
   */
  open(opening: ShardOpening, late: boolean): void;
  /** Reads events after `after` from the leader's log (a page; an empty page: none retained). */
  read(after: number): Promise<{ events: EventData[]; epoch: string }>;
  /** Ends every subscriber, telling each to resume by offset (the shard lost its place in the log). */
  resetAll(reason: string): void;
  /** Tells the shard's presence subscribers of a user's join or leave in the room. */
  announce(events: EventData[]): void;
}

export class Upstream {
  readonly #host: UpstreamHost;
  /** The offset of the last event fanned out; undefined until the first push (after construction). */
  #position: number | undefined;
  #epoch: string | undefined;
  /** Pushes held back while a gap is being filled. */
  readonly #held: ShardPush[] = [];
  #filling = false;

  constructor(host: UpstreamHost) {
    this.#host = host;
  }

  get position(): number | undefined {
    return this.#position;
  }

  /** Applies a push from the leader, or holds it back until a gap before it is filled. */
  receive(p: ShardPush): void {
    if (this.#filling) {
      this.#held.push(p);
      return;
    }
    if (this.#epoch !== undefined && p.epoch !== this.#epoch) {
      // The log was reset: nothing before this push is comparable. Subscribers resume and get a gap.
      this.#host.resetAll("the room's log has a new epoch");
      this.#position = undefined;
    }
    this.#epoch = p.epoch;
    if (this.#position !== undefined && p.from > this.#position + 1) {
      this.#held.push(p);
      void this.#fill(p.from - 1);
      return;
    }
    this.#apply(p);
  }

  #apply(p: ShardPush): void {
    const at = this.#position ?? p.from - 1;
    // Events the shard has already fanned out (a retried push) are skipped.
    const fresh = p.events.filter((e) => e.seq > at);
    if (fresh.length > 0) {
      this.#host.fanOut(fresh);
      this.#position = fresh[fresh.length - 1].seq;
    } else {
      this.#position = Math.max(at, p.from - 1);
    }
    const late = this.#position > p.from - 1;
    for (const o of p.openings ?? []) this.#host.open(o, late);
    if (p.presence && p.presence.length > 0) this.#host.announce(p.presence);
  }

  /** Reads what the shard missed up to `upTo` from the leader's log, then applies the pushes held back. */
  async #fill(upTo: number): Promise<void> {
    this.#filling = true;
    try {
      while ((this.#position as number) < upTo) {
        const { events, epoch } = await this.#host.read(this.#position as number);
        const wanted = events.filter((e) => e.seq > (this.#position as number) && e.seq <= upTo);
        if (epoch !== this.#epoch || wanted.length === 0 || wanted[0].seq !== (this.#position as number) + 1) {
          throw new Error(`events ${(this.#position as number) + 1}-${upTo} are no longer in the log`);
        }
        this.#host.fanOut(wanted);
        this.#position = wanted[wanted.length - 1].seq;
      }
    } catch (e) {
      console.warn("shard could not fill a gap; its subscribers resume", e);
      this.#host.resetAll("the shard lost its place in the room's log: resume after the last seq");
      this.#position = undefined;
    }
    this.#filling = false;
    for (const p of this.#held.splice(0)) this.receive(p);
  }
}
