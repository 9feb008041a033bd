import { describe, expect, it } from "vitest";
import { coalesceChunks } from "../../src/transports/connect/coalesce";

const bytes = (...xs: number[]) => new Uint8Array(xs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function collect(source: AsyncIterable<Uint8Array>): Promise<number[][]> {
  const out: number[][] = [];
  for await (const chunk of coalesceChunks(source)) out.push([...chunk]);
  return out;
}

describe("coalesceChunks", () => {
  it("joins chunks that are ready together and keeps apart those that are not", async () => {
    async function* source() {
      yield bytes(1);
      yield bytes(2, 3);
      yield bytes(4);
      await sleep(30);
      yield bytes(5);
      await sleep(30);
      yield bytes(6);
    }
    expect(await collect(source())).toEqual([[1, 2, 3, 4], [5], [6]]);
  });

  it("hands on the last chunks and the end together, and an error after the chunks before it", async () => {
    async function* ends() {
      yield bytes(1);
      yield bytes(2);
    }
    expect(await collect(ends())).toEqual([[1, 2]]);

    const got: number[][] = [];
    async function* fails() {
      yield bytes(1);
      await sleep(20);
      throw new Error("room closed");
    }
    await expect(
      (async () => {
        for await (const chunk of coalesceChunks(fails())) got.push([...chunk]);
      })(),
    ).rejects.toThrow("room closed");
    expect(got).toEqual([[1]]);
  });

  it("passes cancellation on to the source", async () => {
    let finished = false;
    async function* source() {
      try {
        yield bytes(1);
        await sleep(20);
        yield bytes(2);
      } finally {
        finished = true;
      }
    }
    const it = coalesceChunks(source())[Symbol.asyncIterator]();
    expect([...((await it.next()).value as Uint8Array)]).toEqual([1]);
    await it.return?.();
    expect(finished).toBe(true);
  });
});

describe("coalesceChunks on a long stream", () => {
  it("joins at most 64 KiB and sets one timer per chunk it writes (a Worker may have 10,000)", async () => {
    const n = 20_000;
    async function* source() {
      for (let i = 0; i < n; i++) yield new Uint8Array(100);
    }
    const sizes: number[] = [];
    for await (const chunk of coalesceChunks(source())) sizes.push(chunk.byteLength);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(n * 100);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(64 * 1024 + 100);
    expect(sizes.length).toBeLessThan(n / 100);
  });
});
