/**
 * The README's error table is the table in src/errors.ts: the same codes, and for each the same
 * HTTP status, Connect code, WebSocket close code and reconnect answer. (No server needed.)
 */
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { CODES, type ErrorCode } from "../../src/errors";

interface Row {
  http: string;
  connect: string;
  close: string;
  reconnect: boolean;
}

/** The rows of the table under `## Errors`, by code. */
function readmeTable(): Record<string, Row> {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("\n## Errors"));
  const rows: Record<string, Row> = {};
  for (const line of section.split("\n")) {
    const cells = line.split("|").map((c) => c.trim());
    const code = /^`([a-z_]+)`$/.exec(cells[1] ?? "")?.[1];
    if (!code) {
      if (Object.keys(rows).length > 0 && !line.startsWith("|")) break;
      continue;
    }
    rows[code] = {
      http: cells[2],
      connect: cells[3].replaceAll("`", ""),
      close: cells[4],
      reconnect: cells[5].startsWith("yes"),
    };
  }
  return rows;
}

it("documents every code of src/errors.ts in the README's error table, rendered as the table renders it", () => {
  const rows = readmeTable();
  expect(Object.keys(rows).sort()).toEqual(Object.keys(CODES).sort());
  for (const [code, r] of Object.entries(CODES) as [ErrorCode, (typeof CODES)[ErrorCode]][]) {
    const row = rows[code];
    // "—": the code never answers an HTTP request (it ends a subscription).
    if (row.http !== "—") expect(row.http, code).toBe(String(r.http));
    expect(row.connect, code).toBe(r.connect);
    expect(row.close, code).toBe(String(r.close));
    expect(row.reconnect, code).toBe(r.reconnect);
  }
});
