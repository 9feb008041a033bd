/** The rules of protocol/rules.ts, with the hostile values that once got through. */
import { describe, expect, it } from "vitest";
import {
  parseEpoch,
  parseId,
  parseOffset,
  parsePublish,
  parseRoomName,
  parseText,
  parseUser,
  utf8Length,
} from "../../src/protocol/rules";

const refused = (fn: () => unknown, code: string) => expect(fn).toThrowError(expect.objectContaining({ code }));

describe("rules", () => {
  it("measure UTF-8 exactly, surrogate pairs included", () => {
    for (const s of ["", "abc", "ü", "€", "🎉", "a🎉ü€b", "\u07ff\u0800\uffff"]) {
      expect(utf8Length(s), s).toBe(new TextEncoder().encode(s).byteLength);
    }
  });

  it("refuse texts that are not well-formed Unicode: a lone surrogate has no UTF-8 form", () => {
    refused(() => parseText("a\udc00b", 100), "invalid_encoding");
    refused(() => parseText("\ud800", 100), "invalid_encoding");
    // 11,000 lone low surrogates once counted as 0 bytes and were stored as 99,000.
    refused(() => parseText("\udc00".repeat(11_000), 65536), "invalid_encoding");
    refused(() => parseUser("x\ud83d"), "invalid_encoding");
    expect(parseText("ok 🎉", 100)).toBe("ok 🎉");
  });

  it("bound texts in UTF-8 bytes", () => {
    expect(parseText("€".repeat(10), 30)).toHaveLength(10);
    refused(() => parseText("€".repeat(11), 30), "too_large");
    refused(() => parseText("", 30), "invalid_argument");
    refused(() => parseText({ nested: {} }, 30), "invalid_argument");
  });

  it("check room names, ids, users, offsets and epochs", () => {
    expect(parseRoomName("a-Z_0.~")).toBe("a-Z_0.~");
    for (const bad of ["", "a b", "café", "a/b", "x".repeat(65), 7, ".", ".."])
      refused(() => parseRoomName(bad), "invalid_argument");
    expect(parseId(undefined)).toBe("");
    refused(() => parseId("has space"), "invalid_argument");
    refused(() => parseId("x".repeat(129)), "invalid_argument");
    expect(parseUser("")).toBeUndefined();
    refused(() => parseUser("tab\there"), "invalid_argument");
    expect(parseOffset("42", "since")).toBe(42);
    expect(parseOffset(42n, "since")).toBe(42);
    expect(parseOffset(undefined, "since")).toBeUndefined();
    for (const bad of ["-1", "1e3", "0x10", "9007199254740992", " 1"])
      refused(() => parseOffset(bad, "since"), "invalid_argument");
    refused(() => parseOffset(2n ** 60n, "since"), "invalid_argument");
    expect(parseEpoch("mx05h9kk3307bcd2")).toBe("mx05h9kk3307bcd2");
    // The same bound whatever the transport: a 60,000-character epoch once passed over Connect.
    refused(() => parseEpoch("e".repeat(60_000)), "invalid_argument");
  });

  it("check a publish as one, naming a publisher who gave no name", () => {
    expect(parsePublish({ text: "hi" }, 100, { name: "anonymous", fixed: false })).toEqual({
      text: "hi",
      id: "",
      user: "anonymous",
    });
    expect(parsePublish({ text: "hi", id: "k-1", user: "ann" }, 100, { name: "anonymous", fixed: false })).toEqual({
      text: "hi",
      id: "k-1",
      user: "ann",
    });
  });
});
