/**
 * Hostile building blocks the generators share: awkward code points (NUL, controls, bidi
 * overrides, BOM, lone surrogates, U+FFFD, astral characters), byte sequences that are not UTF-8,
 * deeply nested JSON, and random mutations of bytes.
 */
import type { Rng } from "../prng";

/** Code points and short strings that trip parsers, renderers and validators. */
export const AWKWARD = [
  "\u0000",
  "\u0001",
  "\t",
  "\n",
  "\r",
  "\u001b",
  "\u007f",
  "\u0085",
  "\u009f",
  "\u00a0",
  "\u200b",
  "\u200d",
  "\u202e",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ufffd",
  "\uffff",
  "\ud800",
  "\udfff",
  "\udbff\udfff",
  "😀",
  "👩‍👩‍👧‍👦",
  "e\u0301",
  "ﷺ",
  "١٢٣",
  "１２３",
  "%00",
  "%2e%2e",
  "../",
  "\\",
  '"',
  "'",
  "<script>",
  `$${"{x}"}`,
  "{{x}}",
];

/** Byte sequences that are not UTF-8: bad leads, lone continuations, overlongs, surrogates, > U+10FFFF, cut-off. */
export const NOT_UTF8: readonly number[][] = [
  [0xff],
  [0xfe],
  [0x80],
  [0xbf],
  [0xc0, 0x80],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0x80],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xc3],
];

/** A string of `n` code points mixing ASCII and awkward ones. */
export function awkwardString(rng: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += rng.chance(0.3) ? rng.pick(AWKWARD) : rng.chars(1, "abcXYZ019 -_.~");
  return s;
}

/** UTF-8 bytes of `text` with a sequence that is not UTF-8 spliced in at a random place. */
export function withBadUtf8(rng: Rng, text: string): Uint8Array {
  const bytes = Buffer.from(text);
  const at = rng.int(0, bytes.length);
  return Buffer.concat([bytes.subarray(0, at), Buffer.from(rng.pick(NOT_UTF8)), bytes.subarray(at)]);
}

/** JSON nested `depth` levels: arrays, objects, or both, around `inner`. */
export function nestedJson(rng: Rng, depth: number, inner = "1"): string {
  const kind = rng.pick(["array", "object", "mixed"] as const);
  let open = "";
  let close = "";
  for (let i = 0; i < depth; i++) {
    const obj = kind === "object" || (kind === "mixed" && rng.chance(0.5));
    open += obj ? '{"a":' : "[";
    close = (obj ? "}" : "]") + close;
  }
  return open + inner + close;
}

/** `data` with 1-5 random byte flips, insertions or deletions. */
export function mutate(rng: Rng, data: Uint8Array): Uint8Array {
  const out = [...data];
  for (let n = rng.int(1, 5); n > 0; n--) {
    const at = rng.int(0, Math.max(0, out.length - 1));
    const op = rng.int(0, 2);
    if (op === 0 && out.length) out[at] = rng.int(0, 255);
    else if (op === 1) out.splice(at, 0, rng.int(0, 255));
    else out.splice(at, 1);
  }
  return Uint8Array.from(out);
}

/** A string of exactly `bytes` UTF-8 bytes, of ASCII or multi-byte characters. */
export function textOfBytes(rng: Rng, bytes: number): string {
  const unit = rng.pick(["a", "é", "€", "😀"]);
  const size = Buffer.byteLength(unit);
  return unit.repeat(Math.floor(bytes / size)) + "b".repeat(bytes % size);
}
