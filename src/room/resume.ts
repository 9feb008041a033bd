/**
 * Where a new subscription starts. Resume from offset N delivers exactly the retained events after
 * N; when some of them are gone (retention), belong to another epoch, or N is past the end of the
 * log, the client is told with an explicit gap and gets everything still retained, never a silent
 * skip (README, Guarantees).
 */
import type { GapReason } from "../protocol/events";
import type { RoomLog } from "./log";

export interface ResumePlan {
  /** The oldest retained offset, 0 when nothing is retained. */
  firstSeq: number;
  /** Replay from this offset (inclusive); undefined: live only. */
  replayFrom?: number;
  /** Set when the client cannot get everything it asked for. */
  gap?: { reason: GapReason; text: string };
}

/**
 * Plans a subscription. `since` undefined means "live only"; 0 means "everything retained".
 * `epoch`, when given, is the epoch `since` belongs to.
 */
export function planResume(log: RoomLog, nowMs: number, since?: number, epoch?: string | null): ResumePlan {
  const first = log.firstAvailable(nowMs);
  const last = log.lastSeq;
  const firstSeq = first > last ? 0 : first;
  if (since === undefined) return { firstSeq };
  if (epoch && epoch !== log.epoch) {
    const text = `offset ${since} is from epoch ${epoch}; the log is now epoch ${log.epoch}`;
    return { firstSeq, replayFrom: first, gap: { reason: "epoch", text } };
  }
  if (since > last) {
    const text = `offset ${since} is past the end of the log (${last}); the log may have been reset`;
    return { firstSeq, replayFrom: first, gap: { reason: "ahead", text } };
  }
  if (since + 1 < first) {
    const text = `events ${since + 1}-${first - 1} are no longer retained`;
    return { firstSeq, replayFrom: first, gap: { reason: "retention", text } };
  }
  return { firstSeq, replayFrom: since + 1 };
}
