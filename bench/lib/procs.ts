/**
 * CPU time and memory of the server processes: every descendant of this process (the bench starts
 * the servers, and nothing else, as children), read from /proc. Linux only, like this machine.
 */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux
const PAGE_BYTES = 4096;

interface Proc {
  pid: number;
  ppid: number;
  cpuSeconds: number;
  rssBytes: number;
  name: string;
}

function readProc(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name is in parentheses and may contain spaces: split after the last ")".
    const close = stat.lastIndexOf(")");
    const name = stat.slice(stat.indexOf("(") + 1, close);
    const f = stat.slice(close + 2).split(" ");
    // Fields after the name start at field 3 (state): ppid is 4, utime 14, stime 15, rss 24.
    return {
      pid,
      ppid: Number(f[1]),
      cpuSeconds: (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND,
      rssBytes: Number(f[21]) * PAGE_BYTES,
      name,
    };
  } catch {
    return undefined;
  }
}

/** The live descendants of this process. */
export function descendants(): Proc[] {
  const all = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map((d) => readProc(Number(d)))
    .filter((p): p is Proc => p !== undefined);
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const walk = (pid: number) => {
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      walk(c.pid);
    }
  };
  walk(process.pid);
  return out;
}

/** CPU seconds used so far by the server processes (workerd and wrangler's own Node processes). */
export function serverCpuSeconds(): number {
  return descendants().reduce((sum, p) => sum + p.cpuSeconds, 0);
}

/** Resident memory of the workerd processes, in bytes. */
export function workerdRssBytes(): number {
  return descendants()
    .filter((p) => p.name.startsWith("workerd"))
    .reduce((sum, p) => sum + p.rssBytes, 0);
}

/** Resident memory of each workerd process, in bytes, largest first. */
export function workerdProcessesRss(): { pid: number; rssBytes: number }[] {
  return descendants()
    .filter((p) => p.name.startsWith("workerd"))
    .map((p) => ({ pid: p.pid, rssBytes: p.rssBytes }))
    .sort((a, b) => b.rssBytes - a.rssBytes);
}

/** CPU seconds used so far by this process (the load generator). */
export function loadCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}
