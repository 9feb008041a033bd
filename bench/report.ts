/** Writes the bench's results: JSON, a markdown table (also into the README), and an SVG chart. */
import { readFileSync, writeFileSync } from "node:fs";
import type { Summary } from "./lib/stats";
import type { IdleResult } from "./workloads/idle";
import { levelsOff, type MemoryResult } from "./workloads/memory";
import type { SlowConsumerResult } from "./workloads/slow-consumer";

type Figures = Record<string, Summary>;

export interface BenchResults {
  date: string;
  quick: boolean;
  machine: Record<string, string | number>;
  config: Record<string, number>;
  /** `${target}/${runtime}` → fan-out figures. */
  fanout: Record<string, Figures>;
  mixed: Record<string, { total: Figures; perTransport: Record<string, Figures> }>;
  /** `${transport}/${runtime}` → fan-out figures of a room with subscribers of that transport only. */
  bridged: Record<string, Figures>;
  /** `${layout}/${runtime}` → fan-out figures of the largest room, on one object or with shards. */
  shards: Record<string, Figures>;
  /** `${target}/${runtime}` → fan-out figures with one message in flight. */
  window1: Record<string, Figures>;
  /** `${target}/${transport}/${runtime}` → publish figures. */
  publish: Record<string, Figures>;
  /** `${transport}/${runtime}` → seconds. */
  resume: Record<string, Summary>;
  idle: IdleResult[];
  /** runtime → a room's memory while messages pass through it. */
  memory: Record<string, MemoryResult>;
  /** `${paused transport}/${runtime}` → a subscriber that stops reading. */
  slowConsumer: Record<string, SlowConsumerResult>;
  startup: { devStartSeconds: Summary; bundle: { rawKiB: number; gzipKiB: number } };
}

const RUNTIMES = ["workerd", "wrangler-dev"];
const TRANSPORTS = ["websocket", "sse", "connect"];

function num(n: number): string {
  if (!Number.isFinite(n)) return "—";
  return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(n >= 10 ? 1 : 2);
}
const fmt = (s?: Summary) => (s ? `${num(s.median)} (${num(s.min)}–${num(s.max)})` : "—");
const ratio = (a?: Summary, b?: Summary) => (a && b ? a.median / b.median : Number.NaN);
const check = (r: number, ok: (r: number) => boolean, target: string) =>
  Number.isFinite(r) ? `${r.toFixed(2)}× ${ok(r) ? "✅" : "❌"} (${target})` : "—";

export function markdown(r: BenchResults): string {
  const out: string[] = [];
  const m = r.machine;
  out.push(
    `Run ${r.date.slice(0, 16).replace("T", " ")} UTC${r.quick ? " (--quick)" : ""} on ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}; load generator on the same machine.`,
    `Figures are median (min–max) of ${r.config.reps} runs; ratios compare medians of the same run.`,
    `"workerd" = \`unstable_startWorker\` with the inspector off (closer to the runtime's own cost); "wrangler dev" = what \`npm start\` runs.`,
    "",
  );
  for (const rt of RUNTIMES) {
    // A run of a few workloads (`--only`) leaves out what it did not measure.
    const measured = [r.fanout, r.window1, r.mixed, r.bridged, r.publish, r.resume].some((o) =>
      Object.keys(o).some((k) => k === rt || k.endsWith(`/${rt}`)),
    );
    if (!measured) continue;
    const relay = r.fanout[`relay/${rt}`];
    const floor = r.fanout[`floor/${rt}`];
    const sized = r.fanout[`floor-sized/${rt}`];
    const sqlFan = r.fanout[`floor-sql/${rt}`];
    const plainFan = r.fanout[`relay-plain/${rt}`];
    const mix = r.mixed[rt];
    const pub = (k: string) => r.publish[k]?.acksPerSec;
    const floorSql = pub(`floor-sql/websocket/${rt}`);
    const floorHttp = pub(`floor-http/http/${rt}`);
    out.push(`**${rt}** (${r.config.subscribers} subscribers)`, "");
    out.push("| workload | figure | relay | floor | relay / floor |", "|---|---|---|---|---|");
    out.push(
      `| fan-out, WebSocket | deliveries/s | ${fmt(relay?.deliveriesPerSec)} | ${fmt(floor?.deliveriesPerSec)} | ${check(ratio(relay?.deliveriesPerSec, floor?.deliveriesPerSec), (x) => x >= 0.8, "≥ 0.8")} |`,
      `| fan-out, WebSocket | p50 / p99 ms | ${fmt(relay?.p50Ms)} / ${fmt(relay?.p99Ms)} | ${fmt(floor?.p50Ms)} / ${fmt(floor?.p99Ms)} | ${check(ratio(relay?.p99Ms, floor?.p99Ms), (x) => x <= 1.25, "p99 ≤ 1.25")} |`,
      `| fan-out one message at a time (window 1), WebSocket | p50 / p99 ms | ${fmt(r.window1[`relay/${rt}`]?.p50Ms)} / ${fmt(r.window1[`relay/${rt}`]?.p99Ms)} | ${fmt(r.window1[`floor/${rt}`]?.p50Ms)} / ${fmt(r.window1[`floor/${rt}`]?.p99Ms)} | ${check(ratio(r.window1[`relay/${rt}`]?.p99Ms, r.window1[`floor/${rt}`]?.p99Ms), (x) => x <= 1.1, "p99 ≤ 1.1")} |`,
      `| fan-out, WebSocket | events per frame (the relay's coalescing) | ${fmt(relay?.eventsPerFlush)} | 1 | |`,
      `| fan-out, WebSocket, relay in plain mode (one frame per event, no batches) | deliveries/s; p99 ms | ${fmt(plainFan?.deliveriesPerSec)}; ${fmt(plainFan?.p99Ms)} | ${fmt(floor?.deliveriesPerSec)}; ${fmt(floor?.p99Ms)} | ${num(ratio(plainFan?.deliveriesPerSec, floor?.deliveriesPerSec))}×; p99 ${num(ratio(plainFan?.p99Ms, floor?.p99Ms))}× |`,
      `| fan-out, WebSocket | server CPU µs per delivery | ${fmt(relay?.serverCpuPerDeliveryUs)} | ${fmt(floor?.serverCpuPerDeliveryUs)} | ${num(ratio(relay?.serverCpuPerDeliveryUs, floor?.serverCpuPerDeliveryUs))}× |`,
      `| fan-out, WebSocket, floor fed ${r.config.relayEventBytes}-byte frames (the relay's event size) | deliveries/s; server CPU µs per delivery | ${fmt(relay?.deliveriesPerSec)}; ${fmt(relay?.serverCpuPerDeliveryUs)} | ${fmt(sized?.deliveriesPerSec)}; ${fmt(sized?.serverCpuPerDeliveryUs)} | ${num(ratio(relay?.deliveriesPerSec, sized?.deliveriesPerSec))}× |`,
      `| fan-out, WebSocket, floor with one SQLite insert per message | deliveries/s; server CPU µs per delivery | ${fmt(relay?.deliveriesPerSec)}; ${fmt(relay?.serverCpuPerDeliveryUs)} | ${fmt(sqlFan?.deliveriesPerSec)}; ${fmt(sqlFan?.serverCpuPerDeliveryUs)} | ${num(ratio(relay?.deliveriesPerSec, sqlFan?.deliveriesPerSec))}× |`,
      `| fan-out, WebSocket | lost / duplicated | ${fmt(relay?.lost)} / ${fmt(relay?.duplicated)} | ${fmt(floor?.lost)} / ${fmt(floor?.duplicated)} | must be 0 |`,
      `| durable publish, WebSocket | acks/s | ${fmt(pub(`relay/websocket/${rt}`))} | ${fmt(floorSql)} (SQLite floor) | ${check(ratio(pub(`relay/websocket/${rt}`), floorSql), (x) => x >= 0.8, "≥ 0.8")} |`,
      `| durable publish, WebSocket | server CPU µs per ack | ${fmt(r.publish[`relay/websocket/${rt}`]?.serverCpuPerPublishUs)} | ${fmt(r.publish[`floor-sql/websocket/${rt}`]?.serverCpuPerPublishUs)} | ${num(ratio(r.publish[`relay/websocket/${rt}`]?.serverCpuPerPublishUs, r.publish[`floor-sql/websocket/${rt}`]?.serverCpuPerPublishUs))}× |`,
      `| durable publish, WebSocket plain mode (the echo is the answer: one frame, like the floor) | acks/s | ${fmt(pub(`relay/websocket-plain/${rt}`))} | ${fmt(floorSql)} (SQLite floor) | ${num(ratio(pub(`relay/websocket-plain/${rt}`), floorSql))}× |`,
      `| durable publish, HTTP POST | acks/s | ${fmt(pub(`relay/http/${rt}`))} | ${fmt(floorHttp)} (a Worker's bare answer) | ${num(ratio(pub(`relay/http/${rt}`), floorHttp))}× |`,
      `| durable publish, Connect | acks/s | ${fmt(pub(`relay/connect/${rt}`))} | ${fmt(floorHttp)} (a Worker's bare answer) | ${num(ratio(pub(`relay/connect/${rt}`), floorHttp))}× |`,
    );
    if (mix) {
      const ws = mix.perTransport.websocket;
      for (const t of TRANSPORTS) {
        const f = mix.perTransport[t];
        out.push(
          `| mixed fan-out, ${t} third | deliveries/s; p99 ms | ${fmt(f?.deliveriesPerSec)}; ${fmt(f?.p99Ms)} | | ${t === "websocket" ? "(reference)" : check(ratio(f?.deliveriesPerSec, ws?.deliveriesPerSec), (x) => x >= 0.7, "≥ 0.7 of WebSocket")} |`,
        );
      }
      out.push(
        `| mixed fan-out, all | deliveries/s; server CPU µs per delivery | ${fmt(mix.total.deliveriesPerSec)}; ${fmt(mix.total.serverCpuPerDeliveryUs)} | | ${num(ratio(mix.total.deliveriesPerSec, floor?.deliveriesPerSec))}× of the WebSocket floor |`,
      );
    }
    const bws = r.bridged[`websocket/${rt}`];
    for (const t of TRANSPORTS) {
      const b = r.bridged[`${t}/${rt}`];
      if (!b) continue;
      const cpu = ratio(b.serverCpuPerDeliveryUs, bws?.serverCpuPerDeliveryUs);
      const rate = ratio(b.deliveriesPerSec, bws?.deliveriesPerSec);
      out.push(
        `| fan-out, ${t} subscribers only | deliveries/s; server CPU µs per delivery; p99 ms | ${fmt(b.deliveriesPerSec)}; ${fmt(b.serverCpuPerDeliveryUs)}; ${fmt(b.p99Ms)} | | ${t === "websocket" ? "(reference: relay.v1.json)" : `rate ${check(rate, (x) => x >= 0.8, "≥ 0.8")}; CPU ${check(cpu, (x) => x <= 1.5, "≤ 1.5")} of WebSocket`} |`,
      );
    }
    for (const t of TRANSPORTS) {
      out.push(
        `| resume ${r.config.resumeEvents} missed events, ${t} | seconds | ${fmt(r.resume[`${t}/${rt}`])} | | |`,
      );
    }
    out.push(
      `| who was busy (fan-out, relay) | cores: server / load generator | ${fmt(relay?.serverCores)} / ${fmt(relay?.loadCores)} | ${fmt(floor?.serverCores)} / ${fmt(floor?.loadCores)} | of ${m.cores} |`,
      "",
    );
  }
  const layouts = Object.keys(r.shards);
  if (layouts.length > 0) {
    const one = r.shards[layouts[0]];
    out.push(
      `**The largest room** (${r.config.shardRoom} WebSocket subscribers, relay.v1.json, window 10; workerd; all objects share this machine's ${m.cores} cores)`,
      "",
      "| layout | deliveries/s | p50 / p99 ms | server CPU µs per delivery | room's own object: fan-out µs per message | lost / duplicated |",
      "|---|---|---|---|---|---|",
    );
    for (const k of layouts) {
      const f = r.shards[k];
      out.push(
        `| ${k.split("/")[0]} | ${fmt(f.deliveriesPerSec)} (${num(ratio(f.deliveriesPerSec, one?.deliveriesPerSec))}×) | ${fmt(f.p50Ms)} / ${fmt(f.p99Ms)} | ${fmt(f.serverCpuPerDeliveryUs)} | ${fmt(f.roomFanOutUsPerMessage)} (${num(ratio(f.roomFanOutUsPerMessage, one?.roomFanOutUsPerMessage))}×) | ${fmt(f.lost)} / ${fmt(f.duplicated)} |`,
      );
    }
    out.push("");
  }
  if (r.idle.length > 0) {
    out.push(
      "**Idle and hibernation** (wrangler dev)",
      "",
      "| subscribers | KiB per idle connection (workerd RSS) | room evicted with only them attached |",
      "|---|---|---|",
    );
  }
  for (const i of r.idle) {
    out.push(
      `| ${i.connections} × ${i.transport} | ${num(i.kibPerConnection)} | ${i.evicted ? "yes ✅" : "no ❌"} (after ${i.waitedSeconds} s) |`,
    );
  }
  out.push(...memoryTable(r), ...slowConsumerTable(r));
  const b = r.startup.bundle;
  if (r.startup.devStartSeconds.runs.length === 0 && b.rawKiB === 0) return out.join("\n");
  out.push(
    "",
    "**Start and size**",
    "",
    "| figure | value | target |",
    "|---|---|---|",
    `| \`wrangler dev\` spawn to first answer | ${fmt(r.startup.devStartSeconds)} s | |`,
    `| deploy bundle (\`wrangler deploy --dry-run --minify\`) | ${num(b.rawKiB)} KiB raw, ${num(b.gzipKiB)} KiB gzip | ${b.rawKiB <= 200 ? "✅" : "❌"} ≤ 200 KiB raw |`,
  );
  return out.join("\n");
}

/** Where the log stops growing (the bench's HISTORY_MAX_COUNT): the memory table's knee. */
const MEMORY_KNEE = 20_000;
const mib = (x: number) => num(x);
/** A count: an integer, with thousands separators. */
const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "—");
const signed = (x: number) => `${x >= 0 ? "+" : "−"}${num(Math.abs(x))}`;

/** Messages published so far → workerd RSS, one column per runtime, and whether it levels off. */
function memoryTable(r: BenchResults): string[] {
  const rts = RUNTIMES.filter((rt) => r.memory?.[rt]);
  if (rts.length === 0) return [];
  const any = r.memory[rts[0]];
  const kib = any.messageBytes / 1024;
  const out = [
    "",
    `**Memory** (one room, one publisher with 32 in flight, one subscriber, both WebSocket \`relay.v1.json\`; ${int(any.messages)} messages of ${int(kib)} KiB; one run)`,
    "",
    "Resident memory of the workerd processes (MiB), read when the subscriber has every message published so far; the room keeps the newest 20,000 events, so its log stops growing at 20,000.",
    "",
    `| messages published | ${rts.map((rt) => (rt === "wrangler-dev" ? "wrangler dev" : rt)).join(" | ")} |`,
    `|---|${rts.map(() => "---|").join("")}`,
  ];
  const points = [...new Set(rts.flatMap((rt) => r.memory[rt].samples.map((s) => s.published)))].sort((a, b) => a - b);
  for (const p of points) {
    const cells = rts.map((rt) => {
      const s = r.memory[rt].samples.find((x) => x.published === p);
      return s ? mib(s.rssMiB) : "—";
    });
    out.push(`| ${int(p)} | ${cells.join(" | ")} |`);
  }
  out.push(
    `| after a rest (${[...new Set(rts.map((rt) => `${r.memory[rt].restSeconds} s`))].join(", ")}; sockets open) | ${rts.map((rt) => mib(r.memory[rt].rest.rssMiB)).join(" | ")} |`,
    `| growth 0 → ${int(MEMORY_KNEE)} | ${rts
      .map((rt) => {
        const l = levelsOff(r.memory[rt], MEMORY_KNEE);
        return l ? signed(l.early) : "—";
      })
      .join(" | ")} |`,
    `| growth ${int(MEMORY_KNEE)} → last (levels off: ≤ ¼ of the growth 0 → ${int(MEMORY_KNEE)}, or ≤ 32 MiB) | ${rts
      .map((rt) => {
        const l = levelsOff(r.memory[rt], MEMORY_KNEE);
        const m = r.memory[rt];
        if (l) return `${signed(l.late)} ${l.ok ? "✅" : "❌"}`;
        const why = m.closedByRelay ?? m.interrupted;
        const at = m.samples[m.samples.length - 1]?.published ?? 0;
        return `— (run stopped after ${int(at)}${why ? `: ${why}` : ""})`;
      })
      .join(" | ")} |`,
    `| growth over the second half (the end's slope) | ${rts
      .map((rt) => {
        const m = r.memory[rt];
        const last = m.samples[m.samples.length - 1];
        const mid = m.samples.find((s) => s.published >= last.published / 2);
        return mid && last.published > mid.published
          ? `${signed(last.rssMiB - mid.rssMiB)} (${int(mid.published)} → ${int(last.published)})`
          : "—";
      })
      .join(" | ")} |`,
    `| subscriber got / lost / duplicated | ${rts
      .map((rt) => {
        const m = r.memory[rt];
        const last = m.samples[m.samples.length - 1]?.published ?? 0;
        return `${int(m.delivered)} / ${int(last - m.errors - m.delivered)} / ${int(m.duplicated)}`;
      })
      .join(" | ")} |`,
  );
  return out;
}

/** A subscriber that stops reading: memory growth, and whether the relay let it go. */
function slowConsumerTable(r: BenchResults): string[] {
  const rows = Object.entries(r.slowConsumer ?? {});
  if (rows.length === 0) return [];
  const any = rows[0][1];
  const backlogMiB = (any.messages * any.messageBytes) / 2 ** 20;
  const out = [
    "",
    `**Slow consumer** (one reading and one paused subscriber; ${int(any.messages)} messages of ${int(any.messageBytes / 1024)} KiB = ${num(backlogMiB)} MiB published at 200 a second, at most 32 ahead of the reader; the relay's own slow-consumer settings from wrangler.toml; one run)`,
    "",
    "| runtime | paused subscriber | workerd RSS growth, MiB (peak) | dropped by the room | what the paused client got when it read again | the reading subscriber | RSS 10 s after the paused one left, vs before |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const [key, x] of rows) {
    const rt = key.split("/")[1];
    const growth = x.after.rssMiB - x.before.rssMiB;
    const dropped = x.droppedByRoom
      ? `yes ✅ (after ${int(x.droppedAtMessage ?? 0)} messages, ${num(x.droppedAfterSeconds ?? 0)} s)`
      : x.completed
        ? "no ❌"
        : `not by ${int(x.after.published)} messages (the run stopped)`;
    const reader = x.completed
      ? `got all ${int(x.readerDelivered)} ✅`
      : `${x.closedByRelay ?? x.interrupted ?? "publishing timed out"} after ${int(x.readerDelivered)} messages${x.closedByRelay ? " ❌" : ""}`;
    const end =
      x.paused === "websocket"
        ? x.pausedEnd === "none"
          ? "no close"
          : `close ${x.pausedEnd}`
        : x.pausedEnd === "none"
          ? "stream open"
          : `stream ended${x.disconnect ? ` (disconnect: ${x.disconnect})` : ""}`;
    out.push(
      `| ${rt === "wrangler-dev" ? "wrangler dev" : rt} | ${x.paused === "websocket" ? "WebSocket (TCP socket paused)" : "SSE (body not read)"} | ${signed(growth)} (${signed(x.peak.rssMiB - x.before.rssMiB)}) | ${dropped} | ${int(x.pausedDelivered)} messages, ${end} | ${reader} | ${signed(x.released.rssMiB - x.before.rssMiB)} |`,
    );
  }
  return out;
}

/** Bars of deliveries/s and p99 per workload, one group per runtime. */
export function chart(r: BenchResults): string {
  const rows: { label: string; rate: number; p99: number }[] = [];
  for (const rt of RUNTIMES) {
    for (const [label, f] of [
      [`floor, WebSocket (${rt})`, r.fanout[`floor/${rt}`]],
      [`relay, WebSocket (${rt})`, r.fanout[`relay/${rt}`]],
      ...TRANSPORTS.map((t) => [`relay mixed, ${t} (${rt})`, r.mixed[rt]?.perTransport[t]] as const),
    ] as [string, Figures | undefined][]) {
      if (f) rows.push({ label, rate: f.deliveriesPerSec.median, p99: f.p99Ms.median });
    }
  }
  const maxRate = Math.max(...rows.map((x) => x.rate), 1);
  const maxP99 = Math.max(...rows.map((x) => x.p99), 1);
  const rowH = 26;
  const left = 230;
  const barW = 300;
  const h = 60 + rows.length * rowH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + 2 * barW + 140}" height="${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${left}" y="20" font-weight="bold">deliveries/s (median)</text>`,
    `<text x="${left + barW + 70}" y="20" font-weight="bold">p99 publish-to-receive, ms</text>`,
  ];
  rows.forEach((row, i) => {
    const y = 40 + i * rowH;
    const w1 = (row.rate / maxRate) * barW;
    const w2 = (row.p99 / maxP99) * barW;
    const color = row.label.startsWith("floor") ? "#999" : "#2b6cb0";
    parts.push(
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${row.label}</text>`,
      `<rect x="${left}" y="${y}" width="${w1.toFixed(1)}" height="18" fill="${color}"/>`,
      `<text x="${left + w1 + 4}" y="${y + 14}">${num(row.rate)}</text>`,
      `<rect x="${left + barW + 70}" y="${y}" width="${w2.toFixed(1)}" height="18" fill="${color === "#999" ? "#bbb" : "#dd6b20"}"/>`,
      `<text x="${left + barW + 74 + w2}" y="${y + 14}">${num(row.p99)}</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n");
}

const START = "<!-- bench:start -->";
const END = "<!-- bench:end -->";

export function writeReport(r: BenchResults): void {
  const md = markdown(r);
  writeFileSync("bench/results/latest.json", `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync("bench/results/latest.md", `# Benchmark results\n\n${md}\n\n![chart](chart.svg)\n`);
  writeFileSync("bench/results/chart.svg", chart(r));
  const readme = readFileSync("README.md", "utf8");
  const at = readme.indexOf(START);
  const end = readme.indexOf(END);
  if (at !== -1 && end > at && !r.quick) {
    writeFileSync(
      "README.md",
      `${readme.slice(0, at + START.length)}\n${md}\n\n![chart](bench/results/chart.svg)\n${readme.slice(end)}`,
    );
  }
}
