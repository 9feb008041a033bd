/** Starts one `wrangler dev` for the whole e2e project; tests read its URL with `inject("baseUrl")`. */
import type {} from "vitest";
import type { TestProject } from "vitest/node";
import { startDevServer } from "../../tools/dev-server";

declare module "vitest" {
  export interface ProvidedContext {
    baseUrl: string;
  }
}

export default async function setup({ provide }: TestProject): Promise<() => Promise<void>> {
  // Default settings but for these: a 1 s heartbeat lets the presence test see a vanished SSE client noticed at the next write. A small
  // replay limit (16 KiB) lets a test resume a long log in parts.
  const server = await startDevServer({
    vars: { HEARTBEAT_SECONDS: "1", REPLAY_MAX_BYTES: "16384" },
  });
  provide("baseUrl", server.baseUrl);
  return async () => {
    await server.stop();
  };
}
