/**
 * Memory: a room's memory stays bounded however many messages pass through it. One publisher
 * (WebSocket `relay.v1.json`, at most `window` messages that are not yet acknowledged and delivered
 * to the subscriber) sends `messages` texts of `messageBytes` into one room with one subscriber
 * (WebSocket `relay.v1.json`, reads everything, answers flow-control pings). Every `step` messages the publisher stops until the subscriber has
 * every message so far, and the resident memory of the workerd processes is read; once more after
 * a rest with both sockets still open (the room idle; it may be evicted meanwhile).
 *
 * The relay keeps the newest HISTORY_MAX_COUNT events (20,000 in the bench: RELAY_VARS), so its
 * log stops growing at 20,000 messages: past that point a bounded room's memory levels off.
 */
import { randomUUID } from "node:crypto";
import { type Closed, closedBy, openJsonSocket, openPublisher, type Publisher, scan } from "../lib/clients";
import { workerdProcessesRss } from "../lib/procs";
import { type BenchServer, roomWsUrl } from "../lib/servers";

export interface MemorySample {
  /** Messages published (and delivered to the subscriber) before this sample. */
  published: number;
  /** Resident memory of all workerd processes, MiB. */
  rssMiB: number;
  /** Resident memory of the largest workerd process (the one that runs the room), MiB. */
  largestMiB: number;
}

export interface MemoryResult {
  messages: number;
  messageBytes: number;
  samples: MemorySample[];
  /** The sample after the rest (its `published` is the last sample's). */
  rest: MemorySample;
  restSeconds: number;
  /** Distinct messages the subscriber got, messages it got twice, publishes answered with an error. */
  delivered: number;
  duplicated: number;
  errors: number;
  /** Seconds from the first publish to the last sample (pauses at the samples included). */
  publishSeconds: number;
  /** False when the time bound or a closed socket stopped the run before `messages`. */
  completed: boolean;
  /** The relay closed the subscriber or the publisher (e.g. 4003 too slow): the run stopped there. */
  closedByRelay?: string;
  /**
   * Why the run stopped early, when a socket closed otherwise: the local runtime reloads (and drops
   * every socket) when a file its bundle was built from changes, such as node_modules/ under a test
   * run. Such a run measured nothing and is run again.
   */
  interrupted?: string;
}

export interface MemoryOptions {
  messages: number;
  messageBytes: number;
  step: number;
  window: number;
  restMs: number;
  /** Bound on the whole run: past it, what was measured so far is returned. */
  timeoutMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 2 ** 20;

export function sampleRss(published: number): MemorySample {
  const procs = workerdProcessesRss();
  return {
    published,
    rssMiB: procs.reduce((sum, p) => sum + p.rssBytes, 0) / MiB,
    largestMiB: (procs[0]?.rssBytes ?? 0) / MiB,
  };
}

/** Waits until `done()` or `deadline` (Date.now() ms); true when done. */
export async function until(done: () => boolean, deadline: number, everyMs = 20): Promise<boolean> {
  while (!done()) {
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
  return true;
}

export async function memoryLevels(server: BenchServer, o: MemoryOptions): Promise<MemoryResult> {
  const deadline = Date.now() + o.timeoutMs;
  const room = `mem-${randomUUID().slice(0, 8)}`;
  const url = roomWsUrl(server, room);
  const seen = new Uint8Array(o.messages);
  let delivered = 0;
  let duplicated = 0;
  let subscriberClosed: Closed | undefined;
  let publisher: Publisher | undefined;
  const subscriber = await openJsonSocket(url, (d) => {
    scan(d, (n) => {
      if (n < 0 || n >= o.messages) return;
      if (seen[n]++) duplicated++;
      else delivered++;
    });
    publisher?.pump();
  });
  subscriber.once("close", (code: number) => {
    subscriberClosed ??= closedBy("subscriber", code);
  });
  // Paced by the subscriber: at most `window` messages it has not got yet.
  const pub = await openPublisher(url, o.window, o.messageBytes, () => delivered);
  publisher = pub;
  const closedEarly = () => subscriberClosed ?? pub.closed();
  await sleep(1000);
  const samples = [sampleRss(0)];
  const t0 = performance.now();
  let completed = true;
  try {
    for (let at = o.step; at <= o.messages; at += o.step) {
      pub.publishUpTo(at);
      const all = () => {
        const c = pub.counts();
        return c.acked + c.errors >= at && delivered >= c.acked;
      };
      if (!(await until(() => all() || closedEarly() !== undefined, deadline)) || !all()) {
        completed = false;
        break;
      }
      await sleep(500); // let what was just sent leave the runtime's buffers
      samples.push(sampleRss(at));
    }
    const publishSeconds = (performance.now() - t0) / 1000;
    const last = samples[samples.length - 1].published;
    await sleep(Math.max(0, Math.min(o.restMs, deadline - Date.now())));
    const stopped = closedEarly();
    return {
      messages: o.messages,
      messageBytes: o.messageBytes,
      samples,
      rest: sampleRss(last),
      restSeconds: o.restMs / 1000,
      delivered,
      duplicated,
      errors: pub.counts().errors,
      publishSeconds,
      completed: completed && stopped === undefined,
      closedByRelay: stopped?.byRelay ? stopped.what : undefined,
      interrupted: stopped && !stopped.byRelay ? stopped.what : undefined,
    };
  } finally {
    pub.close();
    subscriber.terminate();
  }
}

/**
 * Whether memory levelled off: the growth from `knee` messages (where the log stops growing) to
 * the last sample is at most a quarter of the growth from 0 to `knee`, or at most 32 MiB (the
 * allowance for the allocator and the garbage collector once the first growth is small).
 */
export function levelsOff(r: MemoryResult, knee: number): { early: number; late: number; ok: boolean } | undefined {
  const first = r.samples[0];
  const atKnee = r.samples.find((s) => s.published === knee);
  const last = r.samples[r.samples.length - 1];
  if (!first || !atKnee || last.published <= knee || !r.completed) return undefined;
  const early = atKnee.rssMiB - first.rssMiB;
  const late = last.rssMiB - atKnee.rssMiB;
  return { early, late, ok: late <= Math.max(0.25 * early, 32) };
}
