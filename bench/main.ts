/**
 * `npm run bench`: measures the relay against its floors in one run, under `wrangler dev` and
 * under workerd without the inspector, and writes bench/results/{latest.json,latest.md,chart.svg}
 * and the table in the README. `--quick`: a short smoke run (fewer subscribers, one repetition).
 */
import { writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { type BenchServer, RELAY_VARS, type Runtime, startServer, type Target } from "./lib/servers";
import { type Summary, summarize, summarizeRuns } from "./lib/stats";
import { type BenchResults, markdown, writeReport } from "./report";
import { type FanoutResult, fanout, type SubscriberTransport } from "./workloads/fanout";
import { idle } from "./workloads/idle";
import { memoryLevels } from "./workloads/memory";
import { type PublishResult, type PublishTransport, publishThroughput } from "./workloads/publish";
import { fillRoom, resumeSeconds } from "./workloads/resume";
import { type PausedTransport, slowConsumer } from "./workloads/slow-consumer";
import { bundleSize, devStartSeconds } from "./workloads/startup";

const quick = process.argv.includes("--quick");
// `--only=fanout,publish` and `--runtime=workerd` narrow a run (for trying a change); such a run
// prints its table and writes nothing (but the file named by `--json=<file>`). Workloads: fanout,
// window1, mixed, bridged, shards, publish, resume, memory (memory levels off, and slow consumers), slow-consumer
// (only the latter), idle, startup.
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const only = arg("only")?.split(",");
const want = (workload: string) => !only || only.includes(workload);
// relayEventBytes: the size of the frame a plain-mode subscriber gets for a 100-byte text (the event's
// JSON with its room, offset, epoch, id (a UUID), user and time). A floor fed frames this large shows
// how much of the relay's cost is the bytes its contract puts on the wire.
const cfg = quick
  ? {
      relayEventBytes: 278,
      subscribers: 200,
      reps: 1,
      durationMs: 1500,
      warmupMs: 500,
      resumeEvents: 2000,
      idleConnections: 50,
      idleWaitMs: 13_000,
      memoryMessages: 40_000,
      memoryStep: 10_000,
      memoryRestMs: 5000,
      slowMessages: 2000,
      slowMessageBytes: 32 * 1024,
      shardRoom: 600,
    }
  : {
      relayEventBytes: 278,
      subscribers: 1000,
      reps: 3,
      durationMs: 3000,
      warmupMs: 1000,
      resumeEvents: 10_000,
      idleConnections: 300,
      idleWaitMs: 15_000,
      memoryMessages: 100_000,
      memoryStep: 10_000,
      memoryRestMs: 15_000,
      slowMessages: 6000,
      slowMessageBytes: 32 * 1024,
      shardRoom: 2400,
    };
const runtimes: Runtime[] = arg("runtime") ? [arg("runtime") as Runtime] : ["workerd", "wrangler-dev"];
const log = (...a: unknown[]) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

async function withServer<T>(
  target: Target,
  runtime: Runtime,
  fn: (s: BenchServer) => Promise<T>,
  vars = RELAY_VARS,
): Promise<T> {
  const s = await startServer(target, runtime, vars);
  try {
    return await fn(s);
  } finally {
    await s.stop();
  }
}

/**
 * Runs a one-shot workload again, once, when its sockets were dropped under it: the local runtime
 * reloads when a file its bundle was built from changes (src/, or node_modules/ while tests run),
 * which ends every connection and leaves a fresh process behind.
 */
async function retryInterrupted<T extends { interrupted?: string }>(name: string, run: () => Promise<T>): Promise<T> {
  const first = await run();
  if (first.interrupted === undefined) return first;
  log(`${name}: interrupted (${first.interrupted}); once more`);
  return run();
}

async function repeat<T>(n: number, fn: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) out.push(await fn());
  return out;
}

const results: BenchResults = {
  date: new Date().toISOString(),
  quick,
  machine: {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadGenerator: "same machine, one Node process",
  },
  config: cfg,
  fanout: {},
  mixed: {},
  bridged: {},
  shards: {},
  window1: {},
  publish: {},
  resume: {},
  idle: [],
  memory: {},
  slowConsumer: {},
  startup: { devStartSeconds: summarize([]), bundle: { rawKiB: 0, gzipKiB: 0 } },
};

const publishCases: [Target, PublishTransport][] = [
  ["floor", "websocket"],
  ["floor", "http"],
  ["relay", "websocket"],
  ["relay", "websocket-plain"],
  ["relay", "http"],
  ["relay", "connect"],
];

for (const runtime of runtimes) {
  // 1. Fan-out, WebSocket subscribers. The relay and the floors run in turns (floor, relay, floor
  // fed frames as large as the relay's events, floor with SQLite, relay in plain mode) so that
  // drift of this shared machine falls on all of them alike. The relay's subscribers speak
  // `relay.v1.json` (what the demo page and clients use, and which gets batches); plain mode
  // (one frame per event) shows what coalescing gives.
  if (want("fanout")) {
    const servers = { floor: await startServer("floor", runtime), relay: await startServer("relay", runtime) };
    try {
      const runs: Record<string, FanoutResult[]> = {
        floor: [],
        relay: [],
        "floor-sized": [],
        "floor-sql": [],
        "relay-plain": [],
      };
      for (let i = 0; i < cfg.reps; i++) {
        for (const name of ["floor", "relay", "floor-sized", "floor-sql", "relay-plain"] as const) {
          log(`fan-out ${name} ${runtime}, ${cfg.subscribers} subscribers, run ${i + 1}/${cfg.reps}`);
          const s = name.startsWith("relay") ? servers.relay : servers.floor;
          const messageBytes = name === "floor-sized" ? cfg.relayEventBytes : 100;
          const floorKind = name === "floor-sql" ? "floor-sql" : "floor";
          runs[name].push(
            (
              await fanout(s, {
                ...cfg,
                transports: ["websocket"],
                window: 10,
                messageBytes,
                floorKind,
                protocol: name === "relay" ? "relay.v1.json" : undefined,
              })
            ).result,
          );
        }
      }
      for (const [name, r] of Object.entries(runs)) results.fanout[`${name}/${runtime}`] = summarizeRuns(r);
    } finally {
      await servers.floor.stop();
      await servers.relay.stop();
    }
  }

  // 1b. One message at a time (window 1): latency with nothing to coalesce, the relay against the
  // bare floor, in turns.
  if (want("window1")) {
    const servers = { floor: await startServer("floor", runtime), relay: await startServer("relay", runtime) };
    try {
      const runs: Record<string, FanoutResult[]> = { floor: [], relay: [] };
      for (let i = 0; i < cfg.reps; i++) {
        for (const name of ["floor", "relay"] as const) {
          log(`window 1 ${name} ${runtime}, ${cfg.subscribers} subscribers, run ${i + 1}/${cfg.reps}`);
          const protocol = name === "relay" ? "relay.v1.json" : undefined;
          runs[name].push(
            (await fanout(servers[name], { ...cfg, transports: ["websocket"], window: 1, protocol })).result,
          );
        }
      }
      for (const [name, r] of Object.entries(runs)) results.window1[`${name}/${runtime}`] = summarizeRuns(r);
    } finally {
      await servers.floor.stop();
      await servers.relay.stop();
    }
  }

  // 2. Mixed fan-out: a third each on WebSocket, SSE and Connect.
  if (want("mixed")) {
    log(`mixed fan-out ${runtime}`);
    const mixed = await withServer("relay", runtime, (s) =>
      repeat(cfg.reps, () =>
        fanout(s, { ...cfg, transports: ["websocket", "sse", "connect"], window: 10, protocol: "relay.v1.json" }),
      ),
    );
    results.mixed[runtime] = {
      total: summarizeRuns(mixed.map((m) => m.result)),
      perTransport: Object.fromEntries(
        (["websocket", "sse", "connect"] as SubscriberTransport[]).map((t) => [
          t,
          summarizeRuns(mixed.map((m) => m.perTransport[t] as Record<string, number>)),
        ]),
      ),
    };
  }

  // 2b. Bridged fan-out: a room with only SSE subscribers and one with only Connect subscribers
  // against one with only WebSocket (relay.v1.json) subscribers, same load, in turns: what a
  // bridged subscriber costs the server per delivery, against a direct one.
  if (want("bridged")) {
    await withServer("relay", runtime, async (s) => {
      const runs: Record<SubscriberTransport, FanoutResult[]> = { websocket: [], sse: [], connect: [] };
      for (let i = 0; i < cfg.reps; i++) {
        for (const t of ["websocket", "sse", "connect"] as SubscriberTransport[]) {
          log(`bridged fan-out ${t} ${runtime}, ${cfg.subscribers} subscribers, run ${i + 1}/${cfg.reps}`);
          runs[t].push((await fanout(s, { ...cfg, transports: [t], window: 10, protocol: "relay.v1.json" })).result);
        }
      }
      for (const [t, r] of Object.entries(runs)) results.bridged[`${t}/${runtime}`] = summarizeRuns(r);
    });
  }

  // 2c. The largest room: `shardRoom` WebSocket subscribers on the room's one object, and on the
  // object plus 3 and 7 fan-out shards (ROOM_SHARD_SUBSCRIBERS = a quarter, an eighth of the room),
  // in turns. 2,400: what this machine's open-file limit (20,000) lets wrangler's local proxy carry
  // at ~6 descriptors a connection, with room to spare (README, "Local scale"); bare workerd only.
  if (want("shards") && runtime === "workerd") {
    const layouts: [string, number][] = [
      ["1 object", 0],
      ["object + 3 shards", cfg.shardRoom / 4],
      ["object + 7 shards", cfg.shardRoom / 8],
    ];
    const servers = await Promise.all(
      layouts.map(([, per]) =>
        startServer("relay", runtime, {
          ...RELAY_VARS,
          ROOM_SHARD_SUBSCRIBERS: String(per),
          MAX_CONNECTIONS_PER_ROOM: String(cfg.shardRoom + 10),
        }),
      ),
    );
    try {
      const runs: Record<string, FanoutResult[]> = {};
      for (let i = 0; i < cfg.reps; i++) {
        for (const [j, [name]] of layouts.entries()) {
          log(`room of ${cfg.shardRoom}: ${name} ${runtime}, run ${i + 1}/${cfg.reps}`);
          const r = await fanout(servers[j], {
            ...cfg,
            subscribers: cfg.shardRoom,
            transports: ["websocket"],
            window: 10,
            protocol: "relay.v1.json",
          });
          runs[name] = [...(runs[name] ?? []), r.result];
        }
      }
      for (const [name, r] of Object.entries(runs)) results.shards[`${name}/${runtime}`] = summarizeRuns(r);
    } finally {
      await Promise.all(servers.map((s) => s.stop()));
    }
  }

  // 3. Durable publish throughput: the relay per transport; the SQLite floor (WebSocket) and a
  // bare Worker (HTTP) as floors. In turns, like the fan-out.
  if (want("publish")) {
    const servers = { floor: await startServer("floor", runtime), relay: await startServer("relay", runtime) };
    try {
      const runs: Record<string, PublishResult[]> = {};
      for (let i = 0; i < cfg.reps; i++) {
        for (const [target, transport] of publishCases) {
          const name = target === "relay" ? "relay" : transport === "http" ? "floor-http" : "floor-sql";
          log(`publish ${name} ${transport} ${runtime}, run ${i + 1}/${cfg.reps}`);
          const r = await publishThroughput(servers[target], transport, {
            window: 32,
            durationMs: cfg.durationMs,
            warmupMs: cfg.warmupMs,
          });
          const key = `${name}/${transport}/${runtime}`;
          runs[key] = [...(runs[key] ?? []), r];
        }
      }
      for (const [key, r] of Object.entries(runs)) results.publish[key] = summarizeRuns(r);
    } finally {
      await servers.floor.stop();
      await servers.relay.stop();
    }
  }

  // 4. Resume: deliver the missed events to a client resuming from 0.
  if (want("resume")) {
    log(`resume ${cfg.resumeEvents} events ${runtime}`);
    await withServer("relay", runtime, async (s) => {
      const room = await fillRoom(s, cfg.resumeEvents);
      for (const t of ["websocket", "sse", "connect"] as SubscriberTransport[]) {
        const runs = await repeat(cfg.reps, () => resumeSeconds(s, room, t, cfg.resumeEvents));
        results.resume[`${t}/${runtime}`] = summarize(runs);
      }
    });
  }

  // 4b. Memory: a room's memory levels off however many messages pass through it (one publisher,
  // one subscriber, 1 KiB messages), each on a fresh server so that nothing else is in its memory.
  if (want("memory")) {
    log(`memory ${runtime}: ${cfg.memoryMessages} messages of 1 KiB`);
    results.memory[runtime] = await retryInterrupted(`memory ${runtime}`, () =>
      withServer("relay", runtime, (s) =>
        memoryLevels(s, {
          messages: cfg.memoryMessages,
          messageBytes: 1024,
          step: cfg.memoryStep,
          window: 32,
          restMs: cfg.memoryRestMs,
          timeoutMs: 10 * 60_000,
        }),
      ),
    );
  }

  // 4c. Slow consumer: a subscriber that stops reading (a paused WebSocket, an unread SSE body)
  // beside a reading one, with the relay's own slow-consumer settings (wrangler.toml).
  if (want("memory") || want("slow-consumer")) {
    const vars = RELAY_VARS;
    for (const paused of ["websocket", "sse"] as PausedTransport[]) {
      log(`slow consumer ${runtime}: paused ${paused}, ${cfg.slowMessages} messages of ${cfg.slowMessageBytes} bytes`);
      results.slowConsumer[`${paused}/${runtime}`] = await retryInterrupted(`slow consumer ${runtime}`, () =>
        withServer(
          "relay",
          runtime,
          (s) =>
            slowConsumer(s, paused, {
              messages: cfg.slowMessages,
              messageBytes: cfg.slowMessageBytes,
              window: 32,
              ratePerSecond: 200,
              timeoutMs: 5 * 60_000,
              drainMs: 60_000,
            }),
          vars,
        ),
      );
    }
  }
}

// 5. Idle connections and eviction, under wrangler dev (what users run).
for (const t of (want("idle") ? ["websocket", "sse", "connect"] : []) as SubscriberTransport[]) {
  log(`idle ${t}: ${cfg.idleConnections} connections, ${cfg.idleWaitMs / 1000} s`);
  results.idle.push(await withServer("relay", "wrangler-dev", (s) => idle(s, t, cfg.idleConnections, cfg.idleWaitMs)));
}

// 6. Start and size.
if (want("startup")) {
  log("start and size");
  results.startup = { devStartSeconds: summarize(await repeat(cfg.reps, devStartSeconds)), bundle: bundleSize() };
}

if (only || arg("runtime")) {
  console.log(markdown(results));
  // `--json=<file>`: such a run's figures as JSON too (bench/results/ is left alone).
  const json = arg("json");
  if (json) writeFileSync(json, `${JSON.stringify(results, null, 2)}\n`);
  process.exit(0);
}
writeReport(results);
log("wrote bench/results/latest.json, latest.md, chart.svg and the README table");
process.exit(0);

export type { Summary };
