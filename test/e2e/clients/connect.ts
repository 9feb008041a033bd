/** connect-node transports (Connect JSON, Connect binary, gRPC-Web) and a recorder for their server streams. */
import { ConnectError, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterEach } from "vitest";
import type { ChatEvent } from "../../../src/gen/relay/v1/relay_pb";
import { type ChatEventJson, eventToJson } from "./json";
import { deferred, waitFor, within } from "./wait";

export type ConnectProtocol = "connect-json" | "connect-proto" | "grpc-web";

/** connect-node transports over HTTP/1.1: Connect JSON, Connect binary, gRPC-Web (binary). */
export function connectTransports(baseUrl: string): Record<ConnectProtocol, Transport> {
  return {
    "connect-json": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    "connect-proto": createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: true }),
    "grpc-web": createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  };
}

/**
 * A running server stream (Subscribe or Chat) that records its events until it ends or is stopped:
 * events in the JSON mapping, heartbeat events counted apart. pause() stops pulling from the
 * stream, so the response body is no longer read.
 */
export class StreamRecorder {
  /** Every event but heartbeats, in order. */
  readonly events: ChatEventJson[] = [];
  heartbeats = 0;
  /** The error the call ended with (not set when the client stopped it). */
  error?: ConnectError;
  /** True once the server ended the call (normally or with an error). */
  ended = false;
  /** Resolves when the call is over, however it ended. */
  readonly done: Promise<void>;
  onEvent?: (e: ChatEventJson) => void;
  readonly #ac = new AbortController();
  #paused?: { promise: Promise<void>; resolve: () => void };

  constructor(open: (signal: AbortSignal) => AsyncIterable<ChatEvent>) {
    this.done = (async () => {
      try {
        for await (const e of open(this.#ac.signal)) {
          if (e.kind === "heartbeat") this.heartbeats++;
          else {
            const json = eventToJson(e);
            this.events.push(json);
            this.onEvent?.(json);
          }
          if (this.#paused) await this.#paused.promise;
        }
        if (!this.#ac.signal.aborted) this.ended = true;
      } catch (e) {
        if (!this.#ac.signal.aborted) {
          this.error = ConnectError.from(e);
          this.ended = true;
        }
      }
    })();
  }

  messages(): ChatEventJson[] {
    return this.events.filter((e) => e.kind === "message");
  }

  waitMessages(n: number, ms = 5000): Promise<unknown> {
    return waitFor(
      `${n} messages`,
      () => this.messages().length >= n,
      ms,
      () => this.events,
    );
  }

  pause(): void {
    this.#paused ??= deferred();
  }

  resume(): void {
    this.#paused?.resolve();
    this.#paused = undefined;
  }

  /** Cancels the call (the client goes away) and waits for it to wind down. */
  async stop(): Promise<void> {
    this.resume();
    this.#ac.abort();
    await within(this.done, 5000, "the stream to stop");
  }
}

/**
 * A function that starts recording a stream (Subscribe, Chat) and stops every stream it started
 * after each test of the file that calls this.
 */
export function streamRecorders(): (open: (signal: AbortSignal) => AsyncIterable<ChatEvent>) => StreamRecorder {
  const running: StreamRecorder[] = [];
  afterEach(async () => {
    for (const r of running.splice(0)) await r.stop();
  });
  return (open) => {
    const r = new StreamRecorder(open);
    running.push(r);
    return r;
  };
}
