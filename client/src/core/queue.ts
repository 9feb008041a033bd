/**
 * Publishes waiting for their acknowledgement, in the order they were made. Each keeps its id
 * from the first attempt to the last, so however often it is sent (a dropped connection, a
 * reconnect, a rate limit), the relay stores it once and answers every retry with the original.
 */
import type { PublishInput, Wire } from "../transports/transport.js";
import type { PublishResult } from "../types.js";
import { RelayError } from "./errors.js";
import { relayEvent } from "./events.js";

export interface Pending {
  input: PublishInput;
  /** Sent on the current connection (WebSocket) or in flight (HTTP, Connect), and not answered yet. */
  sent: boolean;
  resolve(r: PublishResult): void;
  reject(e: RelayError): void;
}

export class PublishQueue {
  readonly items: Pending[] = [];

  constructor(readonly max: number) {}

  get size(): number {
    return this.items.length;
  }

  add(input: PublishInput): Promise<PublishResult> {
    if (this.items.length >= this.max) {
      return Promise.reject(
        new RelayError("queue_full", `${this.max} publishes are waiting for their acknowledgement already (maxQueued)`),
      );
    }
    return new Promise((resolve, reject) => this.items.push({ input, sent: false, resolve, reject }));
  }

  find(id: string): Pending | undefined {
    return this.items.find((p) => p.input.id === id);
  }

  /** Resolves the publish whose id the stored event carries; false when none is waiting (an old retry's answer). */
  acked(event: Wire, duplicate: boolean): boolean {
    const p = this.find(event.id);
    if (!p) return false;
    this.remove(p);
    p.resolve({ ...relayEvent(event), duplicate });
    return true;
  }

  fail(p: Pending, e: RelayError): void {
    this.remove(p);
    p.reject(e);
  }

  /** Everything sent on a connection that ended goes again on the next one, with the same ids. */
  unsend(): void {
    for (const p of this.items) p.sent = false;
  }

  failAll(e: RelayError): void {
    for (const p of this.items.splice(0)) p.reject(e);
  }

  private remove(p: Pending): void {
    const i = this.items.indexOf(p);
    if (i >= 0) this.items.splice(i, 1);
  }
}

/** A random UUID; crypto.randomUUID exists only in secure contexts (https, localhost). */
export function newId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A string with a lone surrogate cannot be encoded as UTF-8: the relay refuses it (invalid_encoding). */
export const LONE_SURROGATE: RegExp = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/;
