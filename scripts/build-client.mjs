// Builds the client (client/):
// - client/dist: one ES module per source file, what the package's `exports` name (for Node and
//   bundlers), and the .d.ts files of the public API (the entries and what their declarations
//   import). esbuild strips the types; TypeScript's transpileDeclaration writes each declaration
//   from its source alone (client/tsconfig.json has isolatedDeclarations, so that is always
//   possible). Neither type-checks: `npm run check` does (tsc -p client).
// - public/relay-client.js: the full entry bundled by esbuild for browsers (ESM, minified, one
//   file), which the demo page imports.
// Both are git-ignored. Idempotent, and fast: no type-checking here, and nothing at all when the
// sources are those of the last build (their hash is kept in client/dist/.build-hash).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, transform } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "client/src");
const dist = join(root, "client/dist");

const bundle = join(root, "public/relay-client.js");
const stamp = join(dist, ".build-hash");

const sources = readdirSync(src, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
  .sort();
const hash = createHash("sha256");
for (const f of [...sources, "../package.json", "../tsconfig.json", "../../scripts/build-client.mjs"]) {
  hash.update(f).update(readFileSync(join(src, f)));
}
const digest = hash.digest("hex");
if (existsSync(stamp) && existsSync(bundle) && readFileSync(stamp, "utf8") === digest) process.exit(0);

const { default: ts } = await import("typescript");
const declarationOptions = { ...ts.getDefaultCompilerOptions(), target: ts.ScriptTarget.ES2022, declaration: true };

rmSync(dist, { recursive: true, force: true });
const outPath = (file) => join(dist, file.replace(/\.ts$/, ""));
await Promise.all(
  sources.map(async (file) => {
    const js = await transform(readFileSync(join(src, file), "utf8"), {
      loader: "ts",
      format: "esm",
      target: "es2022",
      sourcefile: file,
    });
    mkdirSync(dirname(outPath(file)), { recursive: true });
    writeFileSync(`${outPath(file)}.js`, js.code);
  }),
);
// Declarations: from the entries, following the relative imports of each declaration written.
const declared = new Set();
const pending = ["index.ts", "websocket.ts"];
while (pending.length > 0) {
  const file = pending.pop();
  if (declared.has(file)) continue;
  declared.add(file);
  const dts = ts.transpileDeclaration(readFileSync(join(src, file), "utf8"), {
    compilerOptions: declarationOptions,
    fileName: file,
  }).outputText;
  writeFileSync(`${outPath(file)}.d.ts`, dts);
  for (const [, spec] of dts.matchAll(/from "(\.{1,2}\/[^"]+)\.js"/g)) {
    pending.push(join(dirname(file), `${spec}.ts`).split("\\").join("/"));
  }
}

await build({
  entryPoints: [join(src, "index.ts")],
  outfile: bundle,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
});
writeFileSync(stamp, digest);
