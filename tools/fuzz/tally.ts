/**
 * The run's books: for each slice (an input class on one transport) how many inputs were tried
 * and how each was answered, the failures (with the input that caused each, enough to repeat it:
 * seed, slice, index), the warnings, and the printed summary with its PASS/FAIL line.
 */

export interface Failure {
  /** The slice, or "probe" / "stored" for the checks between and after the slices. */
  where: string;
  index?: number;
  input?: string;
  why: string;
}

export class Tally {
  readonly tried = new Map<string, number>();
  readonly answers = new Map<string, Map<string, number>>();
  /** Inputs drawn again: one that might have been a valid publish (oracle.ts), or that a transport cannot carry. */
  readonly replaced = new Map<string, number>();
  readonly failures: Failure[] = [];
  readonly warnings: Failure[] = [];
  readonly notes: string[] = [];
  /** Slices cut short by the time budget. */
  readonly cutShort = new Set<string>();

  count(slice: string, label: string): void {
    this.tried.set(slice, (this.tried.get(slice) ?? 0) + 1);
    let m = this.answers.get(slice);
    if (!m) {
      m = new Map();
      this.answers.set(slice, m);
    }
    m.set(label, (m.get(label) ?? 0) + 1);
  }

  replace(slice: string): void {
    this.replaced.set(slice, (this.replaced.get(slice) ?? 0) + 1);
  }

  fail(f: Failure): void {
    this.failures.push(f);
  }

  warn(f: Failure): void {
    this.warnings.push(f);
  }

  get passed(): boolean {
    return this.failures.length === 0;
  }

  /** The summary, one line per slice: `frames ws-json: 600 tried; open+error invalid_argument 540, close 1009 60`. */
  summary(header: string[]): string {
    const lines = [...header];
    const width = Math.max(...[...this.tried.keys()].map((k) => k.length), 10);
    for (const [slice, n] of this.tried) {
      const answers = [...(this.answers.get(slice) ?? new Map<string, number>())]
        .sort((a, b) => b[1] - a[1])
        .map(([label, c]) => `${label} ${c}`)
        .join(", ");
      const extra = [
        this.replaced.get(slice) ? `${this.replaced.get(slice)} redrawn` : "",
        this.cutShort.has(slice) ? "cut short by the time budget" : "",
      ]
        .filter(Boolean)
        .join("; ");
      lines.push(`${slice.padEnd(width)}  ${n} tried${extra ? ` (${extra})` : ""}; ${answers}`);
    }
    const total = [...this.tried.values()].reduce((a, b) => a + b, 0);
    lines.push(`total: ${total} inputs in ${this.tried.size} slices`);
    for (const n of this.notes) lines.push(`NOTE: ${n}`);
    if (this.warnings.length) {
      lines.push(
        `WARN: ${this.warnings.length} abnormal ends (resets, 1006); a burst of them means the dev server reloaded or crashed:`,
      );
      for (const w of this.warnings.slice(0, 10)) lines.push(`  ${describe(w)}`);
    }
    lines.push(this.passed ? "PASS" : `FAIL: ${this.failures.length} failure(s)`);
    for (const f of this.failures.slice(0, 50)) lines.push(`  ${describe(f)}`);
    if (this.failures.length > 50) lines.push(`  ... and ${this.failures.length - 50} more`);
    return lines.join("\n");
  }
}

function describe(f: Failure): string {
  const at = f.index === undefined ? f.where : `${f.where} #${f.index}`;
  return `${at}: ${f.why}${f.input ? ` <- ${f.input}` : ""}`;
}
