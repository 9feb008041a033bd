// `npm start` (after its prestart): `wrangler dev`, with a bound on connections that keeps it up.
// wrangler dev's front process holds ~6 file descriptors per WebSocket and exits for good when it
// runs out ("accept: Too many open files"). Node raises its soft open-file limit to the hard one as
// it starts, and wrangler's processes inherit that, so the hard limit (`ulimit -Hn`) is the ceiling:
// LOCAL_MAX_CONNECTIONS, computed from it, makes the relay refuse connections past it (room_full)
// instead of dying (src/worker/local-limit.ts). Arguments pass through to wrangler dev;
// `npm start -- --var LOCAL_MAX_CONNECTIONS:N` overrides the bound (0: none). README, "Local scale".
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** File descriptors wrangler dev's front process holds per WebSocket (an SSE or Connect stream: 2). */
const FDS_PER_CONNECTION = 6;

/**
 * Connections a server with `nofile` descriptors takes. A fifth (at least 64) is kept for everything
 * else: requests in flight, and connections arriving past the bound (2 each until refused).
 */
function localMaxConnections(nofile) {
  const reserve = Math.max(64, Math.ceil(nofile / 5));
  return Math.max(1, Math.floor((nofile - reserve) / FDS_PER_CONNECTION));
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const wrangler = [process.execPath, join(root, "node_modules/wrangler/bin/wrangler.js"), "dev"];
const args = process.argv.slice(2);

let command = wrangler;
if (process.platform !== "win32") {
  // This process's limit (a shell inherits it), which Node raised as it started: wrangler's will be the same.
  const nofile = Number(spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout?.trim());
  if (Number.isSafeInteger(nofile) && nofile > 0) {
    const limit = localMaxConnections(nofile);
    console.log(
      `Open-file limit ${nofile}: up to ${limit} connections, then new ones are refused` +
        ` (room_full; README "Local scale"). Override: npm start -- --var LOCAL_MAX_CONNECTIONS:N`,
    );
    // Before the caller's arguments, so that a --var of theirs wins.
    command = [...wrangler, "--var", `LOCAL_MAX_CONNECTIONS:${limit}`];
  }
}

const child = spawn(command[0], [...command.slice(1), ...args], { stdio: "inherit", cwd: root });
// Ctrl-C reaches wrangler itself (same process group): wait for it to finish. A signal sent to this
// process alone is passed on.
process.on("SIGINT", () => {});
for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
child.on("error", (e) => {
  console.error(`could not start wrangler dev: ${e.message}`);
  process.exit(1);
});
