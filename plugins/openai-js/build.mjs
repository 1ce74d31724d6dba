// Builds the JS plugin's components with componentize-js's JS API (its
// `jco componentize` CLI wrapper is not used: it failed on this toolchain):
//   dist/openai-js.wasm        from src/strategy.js        (`http.send` import)
//   dist/openai-js-fetch.wasm  from src/strategy-fetch.js  (`fetch`, wasi:http)
// Run through build.sh, which installs the pinned toolchain first.
// `node build.mjs [OUT_DIR]`.
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const outDir = process.argv[2] ?? join(here, 'dist');
await mkdir(outDir, { recursive: true });

for (const [entry, name] of [
  ['strategy.js', 'openai-js.wasm'],
  ['strategy-fetch.js', 'openai-js-fetch.wasm'],
]) {
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: join(here, 'src', entry),
    witPath: join(here, '..', '..', 'wit'),
    worldName: 'strategy',
    // No randomness and no incoming handler; `http` (fetch) and `clocks` (its
    // event loop) stay.
    disableFeatures: ['random', 'fetch-event'],
  });
  const out = join(outDir, name);
  await writeFile(out + '.tmp', component);
  await rename(out + '.tmp', out);
  console.error(`built ${out}: ${component.length} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
