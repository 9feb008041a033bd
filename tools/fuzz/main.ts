/**
 * `npm run fuzz` (through tools/fuzz/run.mjs): starts its own `wrangler dev` (tools/dev-server.ts,
 * the open test vars plus FUZZ_VARS), runs the whole fuzz against it, prints the summary and
 * exits 1 on failure. Options: `--seed N` (else a fresh one, printed), `--per-class N` inputs per
 * slice, `--budget-seconds N`, `--lanes N`, `--only TEXT` (slices whose name holds it; repeatable),
 * `--index N` (one input of each slice run: to repeat a failure), `--trace` (print every input
 * and its answer), `--base-url URL` (an already
 * running relay started with the same vars, instead of a server of its own). The e2e test runs
 * fuzzWithOwnServer() too.
 */
import { startDevServer } from "../dev-server";
import { freshSeed } from "./prng";
import { type FuzzOptions, type FuzzReport, runFuzz } from "./runner";

/** The fuzz server's settings (over dev-server's OPEN_VARS). */
export const FUZZ_VARS = {
  ANONYMOUS_ACCESS: "publish",
  RELAY_JWT_SECRET: "fuzz-secret-0123456789abcdef",
  MAX_MESSAGE_BYTES: "4096",
} as const;

export type FuzzRun = Omit<FuzzOptions, "baseUrl" | "maxMessageBytes" | "secret">;

export interface CliOptions extends FuzzRun {
  baseUrl?: string;
}

export function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = { seed: freshSeed(), perClass: 600, only: [] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = () => {
      const v = value();
      if (!/^\d+$/.test(v)) throw new Error(`${flag} wants a non-negative integer, not ${JSON.stringify(v)}`);
      return Number(v);
    };
    if (flag === "--seed") o.seed = int() >>> 0;
    else if (flag === "--per-class") o.perClass = int();
    else if (flag === "--budget-seconds") o.budgetMs = int() * 1000;
    else if (flag === "--lanes") o.lanes = Math.max(1, int());
    else if (flag === "--only") o.only?.push(value());
    else if (flag === "--index") o.index = int();
    else if (flag === "--base-url") o.baseUrl = value();
    else if (flag === "--trace") o.trace = true;
    else throw new Error(`unknown option ${argv[i]} (see tools/fuzz/main.ts)`);
  }
  return o;
}

/** Whether `wrangler dev` reloaded during the run (src/ changed under it): the run is then not conclusive. */
export function reloaded(output: string): boolean {
  return /Reloading local server|Detected changes, restarted server/.test(output);
}

/** Runs the fuzz against a relay at `baseUrl`, or against a `wrangler dev` of its own (started and stopped here). */
export async function fuzzWithOwnServer(run: CliOptions, log: (line: string) => void = () => {}): Promise<FuzzReport> {
  const settings = { maxMessageBytes: Number(FUZZ_VARS.MAX_MESSAGE_BYTES), secret: FUZZ_VARS.RELAY_JWT_SECRET };
  if (run.baseUrl) return runFuzz({ ...run, baseUrl: run.baseUrl, ...settings, log });
  const server = await startDevServer({ vars: { ...FUZZ_VARS } });
  try {
    const report = await runFuzz({ ...run, baseUrl: server.baseUrl, ...settings, log });
    if (reloaded(server.output())) {
      report.tally.notes.push(
        "wrangler dev reloaded during the run (src/ changed): resets and 1006s may come from that; rerun",
      );
      report.summary = report.tally.summary(report.summary.split("\n").slice(0, 3));
    }
    return report;
  } finally {
    await server.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  let o: CliOptions;
  try {
    o = parseArgs(argv);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  console.log(`fuzz: seed ${o.seed}, ${o.perClass} inputs per slice${o.baseUrl ? `, against ${o.baseUrl}` : ""}`);
  const report = await fuzzWithOwnServer(o, (line) => console.log(`  ${line}`));
  console.log(report.summary);
  return report.passed ? 0 : 1;
}
