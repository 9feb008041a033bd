/**
 * protobuf-es decodes every string field with a default TextDecoder, which drops a leading U+FEFF
 * (a byte-order mark): a binary publish of "\uFEFFhi" was stored as "hi", and a room named
 * "\uFEFFlobby" reached "lobby", while the same strings in JSON arrived whole. The relay keeps what
 * the client sent, so protobuf-es decodes with `ignoreBOM` here, once per isolate, on import.
 */
import { configureTextEncoding } from "@bufbuild/protobuf/wire";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { ignoreBOM: true, fatal: false });
const strict = new TextDecoder("utf-8", { ignoreBOM: true, fatal: true });

configureTextEncoding({
  encodeUtf8: (text) => encoder.encode(text) as Uint8Array<ArrayBuffer>,
  decodeUtf8: (bytes, fatal) => (fatal ? strict : decoder).decode(bytes),
  // A string can be written as UTF-8 when it has no lone surrogate.
  checkUtf8: (text) => text.isWellFormed(),
});
