#!/usr/bin/env node
/**
 * Where a publish's CPU goes: drives concurrent HTTP or Connect publishes into a running relay and
 * takes a CPU profile of its workerd isolate (the Worker and the room objects share it locally)
 * through the inspector (Chrome DevTools Protocol), then prints self time per function, in
 * microseconds per request. Native work done for a function without a frame of its own (an RPC's
 * serialization, a body read) counts as that function's self time.
 *
 *   npx wrangler dev --var ANONYMOUS_ACCESS:publish --var USER_PUBLISH_RATE_PER_SECOND:0 \
 *     --var LIMIT_ANONYMOUS_NEW_ROOMS:false
 *   node tools/cpu-profile.mjs --transport=http      # or connect; --seconds=8 --concurrency=32
 *
 * The relay's address and inspector port default to wrangler.toml's [dev] (8787, 8788): --url=,
 * --inspector=. The profiler slows what it watches: compare profiles with each other, and take
 * rates from `npm run bench`.
 */
import WebSocket from "ws";

const arg = (name, fallback) =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const transport = arg("transport", "http");
const base = arg("url", "http://127.0.0.1:8787");
const inspector = arg("inspector", "8788");
const seconds = Number(arg("seconds", "8"));
const concurrency = Number(arg("concurrency", "32"));
if (!["http", "connect"].includes(transport)) throw new Error("--transport must be http or connect");

const targets = await (await fetch(`http://127.0.0.1:${inspector}/json`)).json();
const cdp = new WebSocket(targets[0].webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  cdp.once("open", resolve);
  cdp.once("error", reject);
});
let lastId = 0;
const waiting = new Map();
cdp.on("message", (data) => {
  const m = JSON.parse(String(data));
  waiting.get(m.id)?.(m);
  waiting.delete(m.id);
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const id = ++lastId;
    waiting.set(id, resolve);
    cdp.send(JSON.stringify({ id, method, params }));
  });

// The load: `concurrency` publishers, each one request at a time.
const room = `profile-${Date.now()}`;
const url = transport === "http" ? `${base}/rooms/${room}/messages` : `${base}/relay.v1.ChatService/Publish`;
const headers =
  transport === "http"
    ? { "Content-Type": "application/json" }
    : { "Content-Type": "application/json", "Connect-Protocol-Version": "1" };
let running = true;
let done = 0;
let refused = 0;
const publisher = async () => {
  for (let n = 0; running; n++) {
    const text = `profile ${n}`;
    const res = await fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(transport === "http" ? { text } : { room, text }),
    });
    await res.arrayBuffer();
    if (res.ok) done++;
    else refused++;
  }
};
const publishers = Array.from({ length: concurrency }, publisher);

await new Promise((r) => setTimeout(r, 2000)); // warm up
await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 100 });
await call("Profiler.start");
const before = done;
await new Promise((r) => setTimeout(r, seconds * 1000));
const { result } = await call("Profiler.stop");
const requests = done - before;
running = false;
await Promise.all(publishers);
cdp.close();

const profile = result.profile;
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
for (const id of profile.samples) {
  const f = nodes.get(id).callFrame;
  const where = f.url ? ` ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}` : "";
  const key = `${f.functionName || "(anonymous)"}${where}`;
  self.set(key, (self.get(key) ?? 0) + 1);
}
const profiledUs = profile.endTime - profile.startTime;
const usPerRequest = (samples) => ((samples / profile.samples.length) * profiledUs) / requests;
const idle = self.get("(idle)") ?? 0;
console.log(
  `${transport}: ${requests} publishes in ${(profiledUs / 1e6).toFixed(1)} s (${refused} refused in all), ` +
    `${profile.samples.length} samples; busy ${usPerRequest(profile.samples.length - idle).toFixed(0)} µs per publish`,
);
for (const [key, samples] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  console.log(`${usPerRequest(samples).toFixed(0).padStart(7)} µs  ${key}`);
}
process.exit(0);
