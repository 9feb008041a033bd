// The size budget: each entry bundled as an application would (esbuild, minified, ESM, browser),
// then gzipped (zlib, level 9). `node client/scripts/size.mjs` prints the figures;
// test/e2e/client/size.test.ts fails when the WebSocket entry is over its budget.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const src = join(dirname(fileURLToPath(import.meta.url)), "../src");

/** Budget of `@edge-relay/client/websocket`, min+gzip bytes. */
export const WEBSOCKET_BUDGET = 6 * 1024;

/** Bundles one entry (`websocket.ts`, `index.ts`); returns its sizes and the packages it pulled in. */
export async function measure(entry) {
  const r = await build({
    entryPoints: [join(src, entry)],
    bundle: true,
    minify: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    metafile: true,
    legalComments: "none",
  });
  const code = r.outputFiles[0].contents;
  const packages = [
    ...new Set(
      Object.keys(r.metafile.inputs)
        .map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(f)?.[1])
        .filter(Boolean),
    ),
  ].sort();
  return { minified: code.byteLength, gzip: gzipSync(code, { level: 9 }).byteLength, packages };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const entry of ["websocket.ts", "index.ts"]) {
    const m = await measure(entry);
    const kib = (n) => `${(n / 1024).toFixed(2)} KiB`;
    console.log(
      `${entry.padEnd(13)} ${kib(m.minified)} minified, ${kib(m.gzip)} min+gzip; packages: ${m.packages.join(", ") || "none"}`,
    );
  }
  console.log(`budget of the WebSocket entry: ${(WEBSOCKET_BUDGET / 1024).toFixed(2)} KiB min+gzip`);
}
