// Fails when an import in src/ goes upward across the layers, or when files import each other in
// a cycle. The layers, top to bottom (a file may import its own layer and the ones below):
//   src/index.ts, src/worker/   the router and the Worker's entry
//   src/transports/<name>/      one folder per transport; never another transport's folder
//   src/edge/                   the Worker-side seam: room client, subscription, env, bodies
//   src/room/                   the Room Durable Object
//   src/auth/                   tokens, rights, the caller as the room sees it
//   src/protocol/               events, formats, rules, close codes
//   src/settings.ts, src/errors.ts, src/gen/
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";

const LAYERS = [
  (f) => f === "index.ts" || f.startsWith("worker/"),
  (f) => f.startsWith("transports/"),
  (f) => f.startsWith("edge/"),
  (f) => f.startsWith("room/"),
  (f) => f.startsWith("auth/"),
  (f) => f.startsWith("protocol/"),
  (f) => f === "settings.ts" || f === "errors.ts" || f.startsWith("gen/"),
];
const layerOf = (f) => LAYERS.findIndex((test) => test(f));
const transportOf = (f) => (f.startsWith("transports/") ? f.split("/")[1] : undefined);

const files = readdirSync("src", { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".ts"))
  .map((f) => f.split("\\").join("/"));
const problems = [];
const graph = new Map();
for (const file of files) {
  const layer = layerOf(file);
  if (layer === -1) problems.push(`${file}: in no layer (see scripts/check-layers.mjs)`);
  const source = readFileSync(join("src", file), "utf8");
  const deps = [];
  for (const [, spec] of source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+["']([^"']+)["']/gm)) {
    if (!spec.startsWith(".")) continue;
    const target = `${normalize(join(dirname(file), spec))
      .split("\\")
      .join("/")
      .replace(/\.ts$/, "")}.ts`;
    deps.push(target);
    if (layerOf(target) < layer) problems.push(`${file} imports ${target}, a layer above it`);
    const [a, b] = [transportOf(file), transportOf(target)];
    if (a && b && a !== b) problems.push(`${file} imports ${target}, another transport's`);
  }
  graph.set(file, deps);
}
// Cycles: a depth-first search over the import graph.
const state = new Map();
const visit = (file, path) => {
  if (state.get(file) === "done") return;
  if (state.get(file) === "open") {
    problems.push(`import cycle: ${[...path.slice(path.indexOf(file)), file].join(" -> ")}`);
    return;
  }
  state.set(file, "open");
  for (const dep of graph.get(file) ?? []) visit(dep, [...path, file]);
  state.set(file, "done");
};
for (const file of files) visit(file, []);
if (problems.length > 0) {
  console.error(`layer check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`layers: ${files.length} files, no upward import, no cycle`);
