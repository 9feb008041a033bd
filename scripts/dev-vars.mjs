// `npm start` runs this first: a fresh clone has no .dev.vars, so it gets a copy of
// .dev.vars.example (anonymous access on, for the demo page and the README's curl examples).
// An existing .dev.vars is the developer's and is left alone. `npm run deploy` never reads it.
import { copyFileSync, existsSync } from "node:fs";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (ANONYMOUS_ACCESS=publish, local only).");
}
