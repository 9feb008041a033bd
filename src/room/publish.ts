/** Validation of a publish, the same for every transport (the room runs it). */
import { RelayError } from "../errors";

/** What a client asks to publish. */
export interface PublishInput {
  text: string;
  id?: string;
  user?: string;
}

/** Idempotency keys: 1-128 printable ASCII characters, no spaces. */
const ID = /^[\x21-\x7e]{1,128}$/;
/** User names: 1-64 characters, no control characters. */
const USER = /^[^\p{Cc}]{1,64}$/u;

/** The UTF-8 length of `s`, without encoding it when the answer is clear from its length. */
export function utf8Length(s: string): number {
  // Each UTF-16 unit is 1-3 UTF-8 bytes (a surrogate pair, 2 units, is 4 bytes).
  let bytes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? 4 : c >= 0xdc00 && c < 0xe000 ? 0 : 3;
  }
  return bytes;
}

/** Checks a publish against the limits; throws a RelayError saying what is wrong. */
export function validatePublish(input: PublishInput, maxMessageBytes: number): Required<PublishInput> {
  if (typeof input.text !== "string" || input.text.length === 0) {
    throw new RelayError("invalid_argument", "text must be a non-empty string");
  }
  // Cheap bound first: bytes >= UTF-16 units.
  if (input.text.length > maxMessageBytes || utf8Length(input.text) > maxMessageBytes) {
    throw new RelayError("too_large", `text is larger than ${maxMessageBytes} bytes`);
  }
  const id = input.id ?? "";
  if (id !== "" && !ID.test(id)) {
    throw new RelayError("invalid_argument", "id must be 1-128 printable ASCII characters without spaces");
  }
  const user = input.user || "anonymous";
  if (!USER.test(user)) throw new RelayError("invalid_argument", "user must be 1-64 characters, no control characters");
  return { text: input.text, id, user };
}
