// Fails when src/gen or client/src/gen is not what `npm run generate` makes from proto/ (or when `buf lint` fails),
// so the committed generated code can never drift from the schema.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const buf = (args) => {
  const r = spawnSync("node_modules/.bin/buf", args, { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

const files = (dir) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => relative(dir, join(d.parentPath, d.name)))
    .sort();

buf(["lint"]);
const out = mkdtempSync(join(tmpdir(), "relay-gen-"));
try {
  buf(["generate", "-o", out]);
  for (const dir of ["src/gen", "client/src/gen"]) {
    const fresh = join(out, dir);
    const want = files(fresh);
    const have = files(dir);
    const stale = [...new Set([...want, ...have])].filter(
      (f) => !want.includes(f) || !have.includes(f) || !readFileSync(join(fresh, f)).equals(readFileSync(join(dir, f))),
    );
    if (stale.length > 0) {
      console.error(`${dir} is stale (${stale.join(", ")}): run \`npm run generate\` and commit the result.`);
      process.exit(1);
    }
  }
  console.log("src/gen and client/src/gen are current; buf lint passed.");
} finally {
  rmSync(out, { recursive: true, force: true });
}
