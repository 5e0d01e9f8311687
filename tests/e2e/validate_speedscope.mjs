// Validates a file against speedscope's published file-format schema (the speedscope npm package)
// with ajv.   node validate_speedscope.mjs <file>
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../ui/package.json", import.meta.url)));
const Ajv = require("ajv");
const schema = JSON.parse(readFileSync(require.resolve("speedscope/dist/release/file-format-schema.json"), "utf8"));
const ajv = new Ajv({ strict: false, allErrors: true });
const validate = ajv.compile(schema);
const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
if (!validate(doc)) {
  console.log(JSON.stringify(validate.errors, null, 2));
  process.exit(1);
}
console.log("valid speedscope file");
