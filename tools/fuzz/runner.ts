/**
 * The fuzz run against a relay at `baseUrl`: finds out whether the server checks tokens, runs a
 * health probe, then each slice (its inputs spread over a few lanes, each input bounded in time)
 * with a health probe after it, then checks that the rooms the fuzzer published into hold nothing.
 * Failures: a 5xx or an `internal` answer, a hang, a failed probe, a stored message, (when the
 * server checks tokens) a broken token let through, and an answer that contradicts a documented
 * rule where the fuzzer knows it (offsets, room names: accepted vs refused, the offset an SSE
 * stream resumes after). Bounded in count (`perClass` inputs a slice)
 * and in time (`budgetMs` for all slices; a slice that runs out stops early and says so).
 */

import { bodySlices } from "./generators/bodies";
import { envelopeSlices } from "./generators/envelopes";
import { frameSlices } from "./generators/frames";
import { nameSlices } from "./generators/names";
import { offsetSlices } from "./generators/offsets";
import { roomSlices } from "./generators/rooms";
import { tokenSlices } from "./generators/tokens";
import { httpRequest } from "./http-client";
import { Lane } from "./lane";
import { Rng } from "./prng";
import { healthProbe, storedEvents } from "./probe";
import type { Attempt, FuzzContext, Outcome, Slice } from "./slice";
import { Tally } from "./tally";

export interface FuzzOptions {
  baseUrl: string;
  seed: number;
  /** Inputs per slice (an input class on one transport). */
  perClass: number;
  /** The server's MAX_MESSAGE_BYTES. */
  maxMessageBytes: number;
  /** The server's RELAY_JWT_SECRET. */
  secret: string;
  /** Bound on every request and socket wait, ms (default 5000). */
  timeoutMs?: number;
  /** Inputs in flight per slice (default 4). */
  lanes?: number;
  /** Time for all the slices together, ms (default 4 minutes). */
  budgetMs?: number;
  /** Messages of each health probe (default 20). */
  probeMessages?: number;
  /** Only the slices whose name contains one of these. */
  only?: string[];
  /** Only this input of each slice run (to repeat one input). */
  index?: number;
  /** Log every input and its answer. */
  trace?: boolean;
  log?: (line: string) => void;
}

export interface FuzzReport {
  seed: number;
  passed: boolean;
  authEnforced: boolean;
  tally: Tally;
  summary: string;
  elapsedMs: number;
}

/** Slice names, in run order (for `--only`, and for the test's "every class tried" check). */
export function allSlices(ctx: FuzzContext): Slice[] {
  return [
    ...frameSlices(ctx),
    ...bodySlices(ctx),
    ...envelopeSlices(ctx),
    ...tokenSlices(ctx),
    ...roomSlices(ctx),
    ...offsetSlices(ctx),
    ...nameSlices(ctx),
  ];
}

/** The names of every slice ("frames ws-json", "bodies http", ...). */
export function sliceNames(): string[] {
  const ctx: FuzzContext = {
    base: new URL("http://127.0.0.1"),
    seed: 0,
    maxMessageBytes: 1,
    timeoutMs: 1,
    authEnforced: false,
    secret: "",
    prefix: "x",
  };
  return allSlices(ctx).map((s) => s.name);
}

/** Whether a malformed Bearer token is refused (401): the server checks tokens. */
async function checksTokens(base: URL, room: string, timeoutMs: number): Promise<boolean> {
  const o = await httpRequest(base, false, {
    method: "GET",
    path: `/rooms/${room}/messages`,
    headers: { Authorization: "Bearer not-a-token" },
    timeoutMs,
  });
  return "answer" in o && o.answer.status === 401;
}

/** The attempt for input `index` of `slice`: drawn again (and counted) while it might be a valid publish. */
function attemptFor(slice: Slice, seed: number, index: number, tally: Tally): Attempt | undefined {
  const rng = Rng.forInput(seed, slice.name, index);
  for (let tries = 0; tries < 100; tries++) {
    const a = slice.make(rng);
    if (a) return a;
    tally.replace(slice.name);
  }
  return undefined;
}

function guard(p: Promise<Outcome>, ms: number): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ label: "hang (guard)", failure: `no outcome within ${ms} ms` }), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

function record(tally: Tally, slice: Slice, index: number, attempt: Attempt, o: Outcome): void {
  tally.count(slice.name, o.label);
  const at = { where: slice.name, index, input: attempt.input };
  const e = attempt.expect;
  if (e && !o.failure && !o.warning) {
    if (e.accepted === true && !o.accepted)
      tally.fail({ ...at, why: `refused what the documented rules accept (${o.label})` });
    if (e.accepted === false && o.accepted)
      tally.fail({ ...at, why: `accepted what the documented rules refuse (${o.label})` });
    if (e.resumeId !== undefined && o.resumeId !== undefined && o.resumeId !== e.resumeId) {
      tally.fail({ ...at, why: `resumed after ${o.resumeId}, not after the ${e.resumeId} asked for (${o.label})` });
    }
  }
  if (o.failure) tally.fail({ ...at, why: o.failure });
  if (o.stored) tally.fail({ ...at, why: `stored: a hostile publish was accepted (${o.label})` });
  if (slice.mustRefuse && o.accepted && !o.stored)
    tally.fail({ ...at, why: `a broken token was let through (${o.label})` });
  if (o.warning) tally.warn({ ...at, why: o.warning });
}

async function runSlice(slice: Slice, o: FuzzOptions, base: URL, tally: Tally, deadline: number): Promise<void> {
  const timeoutMs = o.timeoutMs ?? 5000;
  const lanes = o.lanes ?? 4;
  const indices = o.index === undefined ? [...Array(o.perClass).keys()] : [o.index];
  let next = 0;
  const work = async () => {
    const lane = new Lane(base, timeoutMs);
    try {
      while (next < indices.length) {
        if (Date.now() > deadline) {
          tally.cutShort.add(slice.name);
          return;
        }
        const index = indices[next++];
        const attempt = attemptFor(slice, o.seed, index, tally);
        if (!attempt) continue;
        let outcome: Outcome;
        try {
          outcome = await guard(attempt.run(lane), timeoutMs * 5);
        } catch (e) {
          outcome = { label: "fuzzer error", failure: `the fuzzer itself failed: ${(e as Error).stack ?? e}` };
        }
        record(tally, slice, index, attempt, outcome);
        if (o.trace) o.log?.(`${slice.name} #${index}: ${outcome.label} <- ${attempt.input}`);
      }
    } finally {
      await lane.close();
    }
  };
  await Promise.all(Array.from({ length: Math.min(lanes, indices.length) }, work));
}

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const log = o.log ?? (() => {});
  const base = new URL(o.baseUrl);
  const timeoutMs = o.timeoutMs ?? 5000;
  const prefix = `fz${o.seed.toString(36)}-${(started % 1679616).toString(36).padStart(4, "0")}`;
  const tally = new Tally();
  const authEnforced = await checksTokens(base, `${prefix}-auth`, timeoutMs);
  if (!authEnforced) {
    tally.notes.push(
      "this server does not refuse a malformed Bearer token (GET /messages answered it without 401): the token " +
        "slices sent publishes the rules refuse anyway and checked only for 5xx and hangs, not that tokens are refused",
    );
  }
  const ctx: FuzzContext = {
    base,
    seed: o.seed,
    maxMessageBytes: o.maxMessageBytes,
    timeoutMs,
    authEnforced,
    secret: o.secret,
    prefix,
  };
  const slices = allSlices(ctx).filter((s) => !o.only?.length || o.only.some((f) => s.name.includes(f)));
  let probes = 0;
  const probe = async (after: string) => {
    const why = await healthProbe(base, `${prefix}-probe-${probes++}`, o.probeMessages ?? 20, timeoutMs);
    if (why) tally.fail({ where: "probe", why: `after ${after}: ${why}` });
    return why === undefined;
  };
  const header = () => [
    `seed ${o.seed} (repeat: --seed ${o.seed} --per-class ${o.perClass}); ${o.perClass} inputs per slice, ${o.lanes ?? 4} lanes, timeout ${timeoutMs} ms`,
    `server ${o.baseUrl}: MAX_MESSAGE_BYTES ${o.maxMessageBytes}, tokens ${authEnforced ? "checked" : "NOT checked"}; rooms ${prefix}-*`,
  ];
  const finish = (): FuzzReport => {
    const summary = tally.summary([
      ...header(),
      `${probes} health probes; ${((Date.now() - started) / 1000).toFixed(1)} s`,
    ]);
    return { seed: o.seed, passed: tally.passed, authEnforced, tally, summary, elapsedMs: Date.now() - started };
  };

  if (!(await probe("start"))) return finish();
  const budgetEnd = started + (o.budgetMs ?? 240_000);
  for (const [k, slice] of slices.entries()) {
    const t0 = Date.now();
    // An even share of what is left, so one slow slice cannot starve the rest.
    const deadline = t0 + (budgetEnd - t0) / (slices.length - k);
    await runSlice(slice, o, base, tally, deadline);
    log(`${slice.name}: ${tally.tried.get(slice.name) ?? 0} inputs in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    await probe(slice.name);
  }
  for (const room of new Set(slices.map((s) => s.room).filter((r) => r !== undefined))) {
    const events = await storedEvents(base, room, timeoutMs);
    if (typeof events === "string") tally.fail({ where: "stored", why: events });
    else if (events.length) {
      const texts = events.slice(0, 3).map((e) => JSON.stringify(e.text).slice(0, 80));
      tally.fail({
        where: "stored",
        why: `room ${room} holds ${events.length} event(s) the fuzzer never meant to store: ${texts.join(", ")}`,
      });
    }
  }
  return finish();
}
