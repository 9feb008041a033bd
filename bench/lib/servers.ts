/**
 * The servers the bench measures, each under two runtimes:
 * - "wrangler-dev": `wrangler dev` as users run it (a separate process group; every socket goes
 *   through two workerd processes and streamed chunks are reported to the inspector);
 * - "workerd": wrangler's `unstable_startWorker` with the inspector off, inside this process's
 *   children: closer to the runtime's own cost (no inspector, so a figure leaves out what the dev
 *   tooling adds per socket and per streamed chunk).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_startWorker } from "wrangler";
import { freePort, OPEN_VARS, startDevServer } from "../../tools/dev-server";

export type Runtime = "wrangler-dev" | "workerd";
export type Target = "relay" | "floor";

export interface BenchServer {
  target: Target;
  runtime: Runtime;
  baseUrl: string;
  stop(): Promise<void>;
}

/**
 * Settings for the relay under load: an open relay without the per-user limits (OPEN_VARS: every
 * bench client is one anonymous address), no per-connection rate limit, room for 10,000+ events.
 */
export const RELAY_VARS: Record<string, string> = {
  ...OPEN_VARS,
  PUBLISH_RATE_PER_SECOND: "0",
  HISTORY_MAX_COUNT: "20000",
  MAX_CONNECTIONS_PER_ROOM: "5000",
};

const CONFIG: Record<Target, string> = { relay: "wrangler.toml", floor: "bench/floor/wrangler.toml" };

export async function startServer(target: Target, runtime: Runtime, vars = RELAY_VARS): Promise<BenchServer> {
  const v = target === "relay" ? vars : {};
  if (runtime === "wrangler-dev") {
    const s = await startDevServer({ config: CONFIG[target], vars: v });
    return { target, runtime, baseUrl: s.baseUrl, stop: s.stop };
  }
  const persist = mkdtempSync(join(tmpdir(), "relay-bench-"));
  const worker = await unstable_startWorker({
    config: CONFIG[target],
    bindings: Object.fromEntries(Object.entries(v).map(([k, value]) => [k, { type: "plain_text" as const, value }])),
    dev: {
      server: { hostname: "127.0.0.1", port: await freePort() },
      inspector: false,
      persist,
      watch: false,
      logLevel: "error",
    },
  });
  await worker.ready;
  const url = await worker.url;
  return {
    target,
    runtime,
    baseUrl: url.origin,
    stop: async () => {
      await worker.dispose();
      rmSync(persist, { recursive: true, force: true });
    },
  };
}

/** The WebSocket URL of a room: the relay's route, or a floor's (`floor` or `floor-sql`). */
export function roomWsUrl(s: BenchServer, room: string, floor: "floor" | "floor-sql" = "floor", query = ""): string {
  const path = s.target === "relay" ? `/rooms/${room}/ws` : `/${floor}/${room}/ws`;
  return `${s.baseUrl.replace(/^http/, "ws")}${path}${query}`;
}
