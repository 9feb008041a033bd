// How many connections a local relay (`npm start`) holds, and whether it stays up past them.
//
//   node tools/local-scale.mjs [--url http://127.0.0.1:8787] [--ws 10000] [--sse 0] [--rooms 10]
//                              [--concurrency 32] [--seconds 600] [--pgid N]
//
// Opens WebSockets (and SSE streams) spread over rooms, a few at a time, then reports how many are
// open, how many were refused and how (close code and reason, HTTP status and error code), publishes
// one message to each room and counts the open subscribers it reached, and checks /healthz. Each
// connection names its own client address (CF-Connecting-IP, which wrangler dev passes through), so
// the per-user limit of an anonymous client (MAX_CONNECTIONS_PER_USER, by address) does not apply.
// Loopback only; everything ends by --seconds. --pgid: the server's process group (e.g. from
// `setsid npm start`), whose processes' open descriptors are reported. Exit code 0 when the server
// is still up and every open subscriber got its room's message.
import { readdirSync, readFileSync } from "node:fs";
import http from "node:http";
import { createRequire } from "node:module";

const WebSocket = createRequire(import.meta.url)("ws");

const opts = { url: "http://127.0.0.1:8787", ws: 10000, sse: 0, rooms: 10, concurrency: 32, seconds: 600, pgid: 0 };
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, "");
  if (!(key in opts)) throw new Error(`unknown option ${process.argv[i]}`);
  opts[key] = key === "url" ? process.argv[i + 1] : Number(process.argv[i + 1]);
}
const base = new URL(opts.url);
if (!["127.0.0.1", "localhost", "[::1]"].includes(base.hostname)) throw new Error("loopback addresses only");
const deadline = Date.now() + opts.seconds * 1000;
const timer = setTimeout(() => {
  console.log(`gave up after ${opts.seconds} s`);
  process.exit(2);
}, opts.seconds * 1000);
timer.unref();

const run = Date.now().toString(36);
const roomOf = (i) => `scale-${run}-${i % opts.rooms}`;
const addressOf = (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const refused = new Map();
const note = (what) => refused.set(what, (refused.get(what) ?? 0) + 1);

/** A WebSocket subscriber: resolves once it is open or refused. */
function openWs(i) {
  return new Promise((settled) => {
    const url = `ws://${base.host}/rooms/${roomOf(i)}/ws?user=u${i}`;
    const ws = new WebSocket(url, { headers: { "CF-Connecting-IP": addressOf(i) } });
    const sub = { ws, room: roomOf(i), got: [], refusal: undefined };
    const done = () => setTimeout(() => settled(sub), 0);
    const t = setTimeout(() => {
      sub.refusal = "no answer in 15 s";
      ws.terminate();
    }, 15000);
    ws.on("message", (data) => sub.got.push(String(data)));
    ws.once("open", () => {
      clearTimeout(t);
      // A refusal is an accepted socket closed at once: give its close frame a moment.
      setTimeout(() => settled(sub), 50);
    });
    ws.once("unexpected-response", (_req, res) => {
      clearTimeout(t);
      readRefusal(res, (refusal) => {
        sub.refusal = refusal;
        ws.terminate();
        done();
      });
    });
    ws.once("error", (e) => {
      clearTimeout(t);
      sub.refusal ??= `error ${e.code ?? e.message}`;
      done();
    });
    ws.once("close", (code, reason) => {
      clearTimeout(t);
      sub.refusal ??= `close ${code} ${String(reason)}`;
      done();
    });
  });
}

/** Reads a refused answer's body: "HTTP <status> <code>: <message>" (the relay's JSON error), to `then`. */
function readRefusal(res, then) {
  let body = "";
  res.on("data", (d) => {
    body += d;
  });
  res.on("end", () => {
    let error = "";
    try {
      const e = JSON.parse(body).error;
      error = ` ${e.code}: ${e.message}`;
    } catch {}
    then(`HTTP ${res.statusCode}${error}`);
  });
}

/** An SSE subscriber: resolves once its answer's status is known. */
function openSse(i) {
  return new Promise((settled) => {
    const sub = { room: roomOf(i), got: [], refusal: undefined, req: undefined };
    sub.req = http.get(
      `http://${base.host}/rooms/${roomOf(i)}/sse?user=s${i}`,
      { headers: { "CF-Connecting-IP": addressOf((1 << 20) | i) }, agent: false },
      (res) => {
        if (res.statusCode === 200) {
          res.setEncoding("utf8");
          res.on("data", (d) => sub.got.push(d));
          res.on("close", () => {
            sub.refusal ??= "stream ended";
          });
          settled(sub);
          return;
        }
        readRefusal(res, (refusal) => {
          sub.refusal = refusal;
          settled(sub);
        });
      },
    );
    sub.req.on("error", (e) => {
      sub.refusal ??= `error ${e.code ?? e.message}`;
      settled(sub);
    });
  });
}

/** Open descriptors of each process of the server's group. */
function fds() {
  if (!opts.pgid) return "";
  const out = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) !== opts.pgid) continue;
      const comm = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
      if (/^(workerd|node)$/.test(comm)) out.push(`${comm} ${pid}: ${readdirSync(`/proc/${pid}/fd`).length}`);
    } catch {}
  }
  return ` | open fds: ${out.join(", ")}`;
}

async function healthy() {
  try {
    const res = await fetch(new URL("/healthz", base), { signal: AbortSignal.timeout(5000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

const started = Date.now();
const subs = [];
const total = opts.ws + opts.sse;
let next = 0;
let lastReport = 0;
async function worker() {
  while (next < total && Date.now() < deadline) {
    const i = next++;
    subs.push(await (i < opts.ws ? openWs(i) : openSse(i)));
    if (subs.length - lastReport >= 1000) {
      lastReport = subs.length;
      const open = subs.filter((s) => !s.refusal).length;
      console.log(`${subs.length} tried, ${open} open, ${((Date.now() - started) / 1000).toFixed(1)} s${fds()}`);
    }
  }
}
await Promise.all(Array.from({ length: opts.concurrency }, worker));
const openedIn = (Date.now() - started) / 1000;
await sleep(2000);

for (const s of subs) if (s.refusal) note(s.refusal);
const open = subs.filter((s) => !s.refusal);
const report = [...refused].sort((a, b) => b[1] - a[1]).map(([what, n]) => `    ${n} × ${what.slice(0, 160)}`);
console.log(
  `tried ${subs.length} (${opts.ws} WebSocket, ${opts.sse} SSE) over ${opts.rooms} rooms in ${openedIn.toFixed(1)} s`,
);
console.log(`open: ${open.length}${fds()}`);
console.log(`refused or failed: ${subs.length - open.length}${report.length ? `\n${report.join("\n")}` : ""}`);

// One message per room; every open subscriber of the room should get it.
const marker = `scale-check-${run}`;
const up = await healthy();
const published = [];
for (let r = 0; r < opts.rooms; r++) {
  const room = `scale-${run}-${r}`;
  try {
    const res = await fetch(new URL(`/rooms/${room}/messages?user=checker`, base), {
      method: "POST",
      headers: { "Content-Type": "text/plain", "CF-Connecting-IP": "10.255.255.254" },
      body: `${marker} ${room}`,
      signal: AbortSignal.timeout(10000),
    });
    published.push(`${room}: ${res.status}`);
    await res.body?.cancel();
  } catch (e) {
    published.push(`${room}: ${e.cause?.code ?? e.message}`);
  }
}
const reached = () => open.filter((s) => s.got.some((m) => m.includes(`${marker} ${s.room}`))).length;
const waitUntil = Math.min(deadline, Date.now() + 20000);
while (reached() < open.length && Date.now() < waitUntil) await sleep(200);
const stillOpen = open.filter((s) => (s.ws ? s.ws.readyState === WebSocket.OPEN : !s.refusal)).length;
const upAfter = await healthy();
console.log(`published to ${opts.rooms} rooms (${[...new Set(published.map((p) => p.split(": ")[1]))].join(", ")})`);
console.log(`message reached ${reached()} of ${open.length} open subscribers; still open: ${stillOpen}`);
console.log(`server up: before publishing ${up}, at the end ${upAfter}`);

for (const s of subs) s.ws ? s.ws.terminate() : s.req?.destroy();
process.exit(upAfter && reached() === open.length ? 0 : 1);
