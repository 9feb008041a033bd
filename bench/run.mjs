// `npm run bench`: bundles bench/main.ts with esbuild and runs it (tools/run-bundled.mjs).
// Arguments pass through: `npm run bench -- --quick` for a short smoke run.
import { runBundled } from "../tools/run-bundled.mjs";

await runBundled("bench/main.ts", "bench/.out/main.mjs");
