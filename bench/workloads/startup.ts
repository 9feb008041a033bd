/** Start and size: `wrangler dev` time to first answer, and the minified deploy bundle, raw and gzip. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { startDevServer } from "../../tools/dev-server";

/** Seconds from spawning `wrangler dev` to its first 200 on /healthz. */
export async function devStartSeconds(): Promise<number> {
  const t0 = performance.now();
  const s = await startDevServer();
  const seconds = (performance.now() - t0) / 1000;
  await s.stop();
  return seconds;
}

/** The bundle `wrangler deploy --dry-run --minify` builds (offline), raw and gzip, in KiB. */
export function bundleSize(): { rawKiB: number; gzipKiB: number } {
  const out = mkdtempSync(join(tmpdir(), "relay-bundle-"));
  try {
    const r = spawnSync("node_modules/.bin/wrangler", ["deploy", "--dry-run", "--minify", "--outdir", out], {
      encoding: "utf8",
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
    if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${r.stdout}\n${r.stderr}`);
    const js = readdirSync(out).filter((f) => f.endsWith(".js"));
    const bytes = Buffer.concat(js.map((f) => readFileSync(join(out, f))));
    return { rawKiB: bytes.length / 1024, gzipKiB: gzipSync(bytes).length / 1024 };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
