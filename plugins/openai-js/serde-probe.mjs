// Reads one JSON string literal per stdin line (a document to parse) and
// prints what src/json.js makes of it: the document printed back, or
// `ERR <message>`. tests/e2e/conformance.rs compares this with serde_json.
import { createInterface } from 'node:readline';
import { parseJson, stringify } from './src/json.js';

for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
  if (line === '') continue;
  const doc = JSON.parse(line);
  let out;
  try {
    out = stringify(parseJson(doc));
  } catch (e) {
    out = `ERR ${e.message}`;
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
