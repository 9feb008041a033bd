// `npm run fuzz`: bundles tools/fuzz/main.ts with esbuild into the git-ignored tools/fuzz/.out/ and
// runs it (tools/run-bundled.mjs). Arguments pass through: `npm run fuzz -- --seed 42 --per-class 200`.
import { runBundled } from "../run-bundled.mjs";

const { main } = await runBundled("tools/fuzz/main.ts", "tools/fuzz/.out/main.mjs");
// Exit explicitly: a socket the server never closed must not keep the run alive.
process.exit(await main(process.argv.slice(2)));
