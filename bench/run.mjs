// `npm run bench`: bundles bench/main.ts with esbuild (dependencies stay in node_modules) and runs
// it. Arguments pass through: `npm run bench -- --quick` for a short smoke run.
import { mkdirSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

// Two levels below the repository root, like the sources, so paths relative to them still hold.
// Nothing here may reach the internet: wrangler would otherwise send usage metrics and download the
// data it fills Request.cf with, and this machine has no internet access (both are switched off).
process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

const outfile = "bench/.out/main.mjs";
mkdirSync("bench/.out", { recursive: true });
await build({
  entryPoints: ["bench/main.ts"],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  outfile,
  logLevel: "warning",
});
await import(pathToFileURL(outfile).href);
