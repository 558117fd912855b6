// dist/esm holds ES modules, but the package's own "type" is commonjs: a package.json
// of its own tells Node (and TypeScript's node16 resolution) how to load that folder.
const { writeFileSync } = require("node:fs");
const { join } = require("node:path");

writeFileSync(join(__dirname, "..", "dist", "esm", "package.json"), JSON.stringify({ type: "module" }) + "\n");
