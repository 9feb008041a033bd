import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Three projects: unit and integration tests inside workerd (test/worker; the fan-out shards apart,
// with their own settings), and end-to-end tests in Node against a real `wrangler dev` that
// test/e2e/global-setup.ts starts and stops (test/e2e).
export default defineConfig({
  test: {
    projects: [
      workerd("worker", ["test/worker/**/*.test.ts"], {}, ["test/worker/shards.test.ts"]),
      // Fan-out shards: a small shard size so a few dozen subscribers spread over several
      // objects, and the test hook that chooses a client's region.
      workerd("shards", ["test/worker/shards.test.ts"], {
        ROOM_SHARD_SUBSCRIBERS: "10",
        RELAY_TEST_HOOKS: "true",
        // Resumes in one part: a restart sends dozens of subscribers back at once.
        REPLAY_MAX_BYTES: "1048576",
        SUBSCRIBER_MAX_BEHIND_BYTES: "8388608",
      }),
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          globalSetup: ["test/e2e/global-setup.ts"],
          testTimeout: 30_000,
          hookTimeout: 60_000,
          // One dev server for the whole suite; files run one after another to keep the 2-core box calm.
          fileParallelism: false,
        },
      },
    ],
  },
});

/**
 * A project of tests inside workerd: the relay's Worker and Room, with a short heartbeat so a test
 * can see one, one allowed origin for the CORS tests, and small replay and slow-subscriber limits so
 * a resume in parts and a subscriber too far behind are easy to reach; the rest as in wrangler.toml
 * unless `vars` says otherwise.
 */
function workerd(name: string, include: string[], vars: Record<string, string>, exclude: string[] = []) {
  return {
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            HEARTBEAT_SECONDS: "1",
            ALLOWED_ORIGINS: "https://app.example",
            REPLAY_MAX_BYTES: "2048",
            SUBSCRIBER_MAX_BEHIND_BYTES: "65536",
            // An open relay, as `npm start` gives (its .dev.vars), without the per-user limits
            // (every test client is one address); test/worker/auth.test.ts tests tokens.
            ANONYMOUS_ACCESS: "publish",
            USER_PUBLISH_RATE_PER_SECOND: "0",
            MAX_CONNECTIONS_PER_USER: "100000",
            LIMIT_ANONYMOUS_NEW_ROOMS: "false",
            RELAY_JWT_SECRET: "worker-test-secret",
            ...vars,
          },
        },
      }),
    ],
    test: { name, include, exclude },
  };
}
