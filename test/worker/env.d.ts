// The bindings tests see through `env` (cloudflare:test, cloudflare:workers) are the Worker's own.
import type { Env as RelayEnv } from "../../src/edge/env";

declare global {
  namespace Cloudflare {
    interface Env extends RelayEnv {}
  }
}
