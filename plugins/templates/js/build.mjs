// Builds the component with componentize-js's JS API (its `jco componentize`
// CLI wrapper is not used: it failed on this toolchain). Run through
// ./build.sh, which installs the pinned toolchain and picks the WIT folder:
//
//   node build.mjs NODE_MODULES WIT_DIR OUT.wasm
//
// NODE_MODULES is the folder holding @bytecodealliance/componentize-js (this
// folder's node_modules, or another install of the same version).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [nodeModules, witDir, out] = process.argv.slice(2);
if (out === undefined) {
  console.error('usage: node build.mjs NODE_MODULES WIT_DIR OUT.wasm');
  process.exit(2);
}
const here = dirname(fileURLToPath(import.meta.url));

// Loaded from NODE_MODULES through the package's own entry point, so the
// toolchain need not sit next to this file.
const pkgDir = join(resolve(nodeModules), '@bytecodealliance', 'componentize-js');
const pkg = JSON.parse(await readFile(join(pkgDir, 'package.json'), 'utf8'));
const { componentize } = await import(pathToFileURL(join(pkgDir, pkg.exports.import)).href);

const started = Date.now();
const { component } = await componentize({
  sourcePath: join(here, 'src', 'strategy.js'),
  witPath: resolve(witDir),
  worldName: 'strategy',
  // Only what the strategy uses: the `http.send` import needs neither
  // wasi:http (`fetch`) nor randomness nor an incoming-request handler.
  // Keep `stdio` (console.log goes to the host's log) and `clocks`.
  disableFeatures: ['random', 'http', 'fetch-event'],
});
await mkdir(dirname(resolve(out)), { recursive: true });
await writeFile(out + '.tmp', component);
await rename(out + '.tmp', out);
console.error(`built ${out}: ${component.length} bytes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
