/**
 * Events grouped to go out as one frame per subscriber: a fan-out of events published together,
 * or a part of a replay. Bounded in events and in size, so a frame stays well under the 1 MiB a
 * WebSocket message may be.
 */
import type { EncodedEvent } from "../protocol/events";

/** At most this many events share one frame (Cloudflare suggests 10-100 messages per frame). */
const MAX_EVENTS = 100;
/** At most about this many UTF-16 units share one frame. */
const MAX_SIZE = 256 * 1024;
/** What an event adds to its text in a frame: room, offsets, epoch, id, user, time (a rough upper bound). */
const EVENT_OVERHEAD = 512;

export class Batch {
  #events: EncodedEvent[] = [];
  #size = 0;

  get length(): number {
    return this.#events.length;
  }

  /** An upper bound of its encoded size, in UTF-16 units. */
  get size(): number {
    return this.#size;
  }

  /** Whether `e` may join: an empty batch takes any event. */
  fits(e: EncodedEvent): boolean {
    return this.#events.length === 0 || (this.#events.length < MAX_EVENTS && this.#size + sizeOf(e) <= MAX_SIZE);
  }

  add(e: EncodedEvent): void {
    this.#events.push(e);
    this.#size += sizeOf(e);
  }

  /** Drops the events after offset `seq` (their rows were not written). */
  dropAfter(seq: number): void {
    this.#events = this.#events.filter((e) => e.data.seq <= seq);
    this.#size = this.#events.reduce((n, e) => n + sizeOf(e), 0);
  }

  /** Its events, in order, leaving it empty. */
  take(): EncodedEvent[] {
    const events = this.#events;
    this.#events = [];
    this.#size = 0;
    return events;
  }
}

function sizeOf(e: EncodedEvent): number {
  return e.data.text.length + EVENT_OVERHEAD;
}
