/**
 * What a new subscription gets before the live stream: `subscribed` (with the offset to resume
 * after), a `gap` when it cannot get everything it asked for, and the replay of the missed events
 * in batches. A replay is bounded in bytes (REPLAY_MAX_BYTES): past it the subscriber gets what
 * fits and is then closed with `replay_paused`, and resumes from the last offset it got. The room
 * never buffers a whole large log for one subscriber.
 */
import { EncodedEvent, type EventData } from "../protocol/events";
import { encodeEvents, type Format, type Frame, frameSize } from "../protocol/formats";
import { Batch } from "./batch";
import type { RoomLog, StoredEvent } from "./log";
import { planResume } from "./resume";

export interface OpeningRequest {
  room: string;
  format: Format;
  since?: number;
  epoch?: string;
  nowMs: number;
  replayMaxBytes: number;
}

export interface Opening {
  frames: Frame[];
  /** The replay stopped at REPLAY_MAX_BYTES; `bytes` were sent. */
  paused: boolean;
  bytes: number;
}

/** The opening frames of a subscription, in `format`. `event` turns a stored row into an event. */
export function opening(log: RoomLog, r: OpeningRequest, event: (e: StoredEvent) => EventData): Opening {
  const plan = planResume(log, r.nowMs, r.since, r.epoch);
  const base = { room: r.room, epoch: log.epoch, id: "", user: "", timeMs: r.nowMs, text: "", seq: 0 };
  const range = { firstSeq: plan.firstSeq, lastSeq: log.lastSeq };
  const head: EventData[] = [{ ...base, ...range, kind: "subscribed", resumeAfter: r.since ?? log.lastSeq }];
  if (plan.gap && plan.replayFrom !== undefined) {
    head.push({ ...base, ...range, kind: "gap", ...plan.gap, resumeAfter: plan.replayFrom - 1 });
  }
  const frames: Frame[] = [];
  let bytes = 0;
  const send = (events: EncodedEvent[]) => {
    for (const f of encodeEvents(r.format, events)) {
      bytes += frameSize(f);
      frames.push(f);
    }
  };
  send(head.map((e) => new EncodedEvent(e)));
  let paused = false;
  if (plan.replayFrom !== undefined) {
    const group = new Batch();
    let replayed = 0;
    for (const row of log.iterate(plan.replayFrom - 1, r.nowMs)) {
      // At least one event per part, however large, so a resume always moves on.
      if (replayed > 0 && bytes + group.size >= r.replayMaxBytes) {
        paused = true;
        break;
      }
      const e = new EncodedEvent(event(row));
      if (!group.fits(e)) send(group.take());
      group.add(e);
      replayed++;
    }
    send(group.take());
  }
  return { frames, paused, bytes };
}
