/**
 * Starts and stops a real `wrangler dev`, for the end-to-end tests (test/e2e) and the benchmark
 * (bench). The server runs in its own process group (wrangler spawns esbuild and two workerd
 * processes), so stopping it signals the whole group and leaves nothing behind. Processes are only
 * ever signalled by the group id we created.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export interface DevServerOptions {
  /** Durable Object storage directory (`--persist-to`); a fresh temp dir (removed on stop) when omitted. */
  persistTo?: string;
  /** `--var KEY:VALUE` overrides of wrangler.toml [vars] (over {@link OPEN_VARS} unless `open` is false). */
  vars?: Record<string, string>;
  /**
   * true (default): an open relay for tests and benchmarks ({@link OPEN_VARS}). false: wrangler.toml's
   * vars alone, as `npm run deploy` ships them.
   */
  open?: boolean;
  /** A dotenv file of vars, in place of a developer's .dev.vars (e.g. .dev.vars.example, what `npm start` copies). */
  envFile?: string;
  /** HTTP port on 127.0.0.1; a free one when omitted. */
  port?: number;
  /** Another worker's wrangler.toml (the benchmark's floor); the relay's when omitted. */
  config?: string;
}

export interface DevServer {
  baseUrl: string;
  port: number;
  persistTo: string;
  /** Everything the server printed so far (bounded). */
  output(): string;
  stop(): Promise<void>;
}

/**
 * The repository root: the nearest directory above this module that holds package.json. Found by
 * walking up, not by a fixed `..`, because this file also runs bundled into bench/.out/main.mjs.
 */
const ROOT = (() => {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no package.json above ${start}`);
  }
})();
/** Callers' hook and test timeouts must exceed this, so that a failed start always stops its process. */
export const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5_000;
const OUTPUT_MAX = 64 * 1024;

/** A port that was free a moment ago on 127.0.0.1 (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port ? done(port) : fail(new Error("no port"))));
    });
  });
}

/**
 * An open relay, as `npm start` gives (its .dev.vars), without the abuse limits that would trip over
 * a test suite whose every client is 127.0.0.1: anyone may publish, no per-user publish rate, no
 * per-user connection bound, no limit on new rooms. Tests of those limits set them again.
 */
export const OPEN_VARS: Record<string, string> = {
  ANONYMOUS_ACCESS: "publish",
  USER_PUBLISH_RATE_PER_SECOND: "0",
  MAX_CONNECTIONS_PER_USER: "100000",
  LIMIT_ANONYMOUS_NEW_ROOMS: "false",
};

/** An empty env file (see startDevServer). */
const EMPTY_ENV_FILE = (() => {
  const path = join(mkdtempSync(join(tmpdir(), "relay-env-")), "empty.env");
  writeFileSync(path, "");
  return path;
})();

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Groups started by this process and not yet stopped: killed if the process exits without stop(). */
const running = new Set<number>();
process.once("exit", () => {
  for (const pgid of running) signalGroup(pgid, "SIGKILL");
});

/** True while any process of group `pgid` is alive (zombies, which hold no port, do not count). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  if (!existsSync("/proc/self/stat")) return true;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      // "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its closing paren.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(pgrp) === pgid && state !== "Z") return true;
    } catch {
      // The process ended while we looked.
    }
  }
  return false;
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is already gone.
  }
}

/** Waits until the group has no process left, or `ms` passed; true when it is gone. */
async function waitGroupGone(child: ChildProcess, ms: number): Promise<boolean> {
  const pgid = child.pid as number;
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      if (!groupAlive(pgid)) return true;
    }
    await sleep(50);
  }
  return !groupAlive(pgid) && (child.exitCode !== null || child.signalCode !== null);
}

/** Starts a dev server; `startDevServer` (below) tries again on new ports when one was taken meanwhile. */
async function startOnce(opts: DevServerOptions): Promise<DevServer> {
  const port = opts.port ?? (await freePort());
  const inspectorPort = await freePort();
  const ownDir = opts.persistTo === undefined;
  const persistTo = opts.persistTo ?? mkdtempSync(join(tmpdir(), "relay-e2e-"));
  const args = ["dev", "--port", String(port), "--inspector-port", String(inspectorPort), "--persist-to", persistTo];
  // Only the vars given here and wrangler.toml's: an empty --env-file keeps a developer's
  // .dev.vars (made by `npm start`) out of tests and benchmarks.
  args.push("--env-file", opts.envFile ?? EMPTY_ENV_FILE);
  if (opts.config) args.push("--config", opts.config);
  const vars = opts.open === false ? (opts.vars ?? {}) : { ...OPEN_VARS, ...opts.vars };
  for (const [k, v] of Object.entries(vars)) args.push("--var", `${k}:${v}`);

  const child = spawn(join(ROOT, "node_modules/.bin/wrangler"), args, {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" },
  });
  let out = "";
  const capture = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > OUTPUT_MAX) out = out.slice(-OUTPUT_MAX);
  };
  if (child.pid !== undefined) running.add(child.pid);
  child.stdout?.on("data", capture);
  child.stderr?.on("data", capture);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      const pgid = child.pid;
      if (pgid === undefined) return;
      signalGroup(pgid, "SIGINT");
      if (!(await waitGroupGone(child, STOP_GRACE_MS))) {
        signalGroup(pgid, "SIGKILL");
        await waitGroupGone(child, STOP_GRACE_MS);
      }
      await Promise.race([exited, sleep(1000)]);
      running.delete(pgid);
      if (ownDir) rmSync(persistTo, { recursive: true, force: true });
    })();
    return stopped;
  };

  const baseUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastError = "";
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`wrangler dev exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    }
    if (/Build failed/.test(out)) {
      await stop();
      throw new Error(`wrangler dev could not build the Worker:\n${out}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev not ready on ${baseUrl} within ${READY_TIMEOUT_MS} ms (${lastError}):\n${out}`);
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) break;
      lastError = `status ${res.status}`;
    } catch (e) {
      lastError = String((e as Error).cause ?? e);
    }
    await sleep(100);
  }
  return { baseUrl, port, persistTo, output: () => out, stop };
}

/**
 * Starts `wrangler dev` and waits until it answers. A port found free can be taken before wrangler
 * binds it (by any socket's ephemeral port: CI once got "Address already in use"), so a start
 * that fails that way is tried again on new ports, when the caller did not fix the port.
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      const taken = /Address already in use/.test(String(e));
      if (!taken || opts.port !== undefined || attempt >= 3) throw e;
    }
  }
}
