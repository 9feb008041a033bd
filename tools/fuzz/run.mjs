// `npm run fuzz`: bundles tools/fuzz/main.ts with esbuild (dependencies stay in node_modules) into
// the git-ignored tools/fuzz/.out/ and runs it, as bench/run.mjs does for the benchmark. Arguments
// pass through: `npm run fuzz -- --seed 42 --per-class 200`.
import { mkdirSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";

// No internet here: wrangler would otherwise send usage metrics and fetch the data of Request.cf.
process.env.WRANGLER_SEND_METRICS = "false";
process.env.CLOUDFLARE_CF_FETCH_ENABLED = "false";

const outfile = "tools/fuzz/.out/main.mjs";
mkdirSync("tools/fuzz/.out", { recursive: true });
await build({
  entryPoints: ["tools/fuzz/main.ts"],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  outfile,
  logLevel: "warning",
});
const { main } = await import(pathToFileURL(outfile).href);
// Exit explicitly: a socket the server never closed must not keep the run alive.
process.exit(await main(process.argv.slice(2)));
