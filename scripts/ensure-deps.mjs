// Installs dependencies from the lockfile when they are missing or out of date, so that
// `npm start` and `npm test` work on a fresh clone without a separate `npm ci`.
// Up to date = node_modules/.relay-lock-hash holds the hash of package-lock.json.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const stamp = "node_modules/.relay-lock-hash";
const hash = createHash("sha256").update(readFileSync("package-lock.json")).digest("hex");
if (existsSync(stamp) && readFileSync(stamp, "utf8") === hash) process.exit(0);

console.log("Installing dependencies from package-lock.json (npm ci)...");
// --ignore-scripts: nothing needs install scripts; esbuild, workerd and buf ship as platform packages.
const r = spawnSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"], { stdio: "inherit" });
if (r.status !== 0) process.exit(r.status ?? 1);
writeFileSync(stamp, hash);
