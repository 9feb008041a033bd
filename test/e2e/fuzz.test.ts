/**
 * A bounded slice of the fuzz (tools/fuzz) in `npm test`: the runner of `npm run fuzz`, with a fixed
 * seed and 150 inputs per slice (an input class on one transport), against a `wrangler dev` of its
 * own started with the fuzz settings (MAX_MESSAGE_BYTES 4096, a JWT secret). It must report no
 * failure (no 5xx, no hang, no failed health probe, nothing stored, no broken token let through, no
 * answer against a documented rule) and have tried every slice.
 * On failure the message is the fuzz summary, whose failures name the seed, slice and input index
 * to repeat with `npm run fuzz -- --seed S --only "<slice>" --index N`.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { type DevServer, READY_TIMEOUT_MS, startDevServer } from "../../tools/dev-server";
import { FUZZ_VARS, fuzzWithOwnServer, reloaded } from "../../tools/fuzz/main";
import { sliceNames } from "../../tools/fuzz/runner";

const SEED = 20261128;
const PER_CLASS = 150;

let server: DevServer;
beforeAll(async () => {
  server = await startDevServer({ vars: { ...FUZZ_VARS } });
}, READY_TIMEOUT_MS + 10_000);
afterAll(async () => {
  await server?.stop();
});

it(`answers ${PER_CLASS} hostile inputs per class and transport without a 5xx, a hang or a stored message (seed ${SEED})`, async () => {
  const report = await fuzzWithOwnServer({
    seed: SEED,
    perClass: PER_CLASS,
    budgetMs: 60_000,
    baseUrl: server.baseUrl,
  });
  // A change under src/ makes wrangler dev reload mid-run: say so, as resets then come from that.
  const why = reloaded(server.output())
    ? `${report.summary}\nNOTE: wrangler dev reloaded during the run`
    : report.summary;
  expect(report.tally.failures, why).toEqual([]);
  for (const name of sliceNames()) expect(report.tally.tried.get(name) ?? 0, `${name}\n${why}`).toBeGreaterThan(0);
}, 120_000);
