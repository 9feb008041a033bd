// Bundles a TypeScript entry point with esbuild (dependencies stay in node_modules) into a
// git-ignored file and imports it: how `npm run bench` and `npm run fuzz` run their TypeScript on
// Node 20, which cannot strip types. The bundle sits as deep below the repository root as its
// sources, so paths relative to them still hold.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

/** Builds `entry` into `outfile` and imports it; resolves with the module. */
export async function runBundled(entry, outfile) {
  // Nothing here may reach the internet: wrangler would otherwise send usage metrics and download
  // the data it fills Request.cf with, and this machine has no internet access.
  process.env.WRANGLER_SEND_METRICS = "false";
  process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";
  mkdirSync(dirname(outfile), { recursive: true });
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    packages: "external",
    outfile,
    logLevel: "warning",
  });
  return import(pathToFileURL(outfile).href);
}
