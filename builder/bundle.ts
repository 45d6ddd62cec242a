/**
 * Bundling one function with esbuild: two minified ESM files with their source maps, the server
 * (main.mjs) and its inference thread's script (inference.mjs: onnxruntime and the engine only),
 * onnxruntime kept external (it is native, and lives in the shared runtime image), the model
 * copied beside them.
 */
import { copyFileSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { PRIME_COMPILE_CACHE } from '../runtime/serve/bundle.ts';
import type { BundleModels } from '../runtime/serve/early-plan.ts';
import { folderOf } from './functions.ts';

export const ROOT = join(import.meta.dirname, '..');

export interface BundleResult {
  name: string;
  outDir: string;
  bundleBytes: number;
  mapBytes: number;
  modelBytes: number;
}

/** The entry esbuild compiles: the declaration (when there is one) handed to the runtime's main. */
function entrySource(fn: ResolvedFunction): string {
  const main = JSON.stringify(join(ROOT, 'runtime/serve/bundle.ts'));
  const info = JSON.stringify({ folder: folderOf(fn), declarationFile: fn.declarationFile });
  // declarationFile is said relative to the working directory (displayPath), which may be a project outside this repository.
  const declaration = fn.declarationFile ? JSON.stringify(resolve(process.cwd(), fn.declarationFile)) : undefined;
  const early = JSON.stringify(join(ROOT, 'runtime/serve/early-thread.ts'));
  const thread = JSON.stringify(join(ROOT, 'runtime/engine/inference-thread.ts'));
  // early-thread first: its thread loads onnxruntime while the modules below are evaluated.
  return [
    `import ${early};`,
    `import { runBundled } from ${main};`,
    `import { setInferenceWorkerScript } from ${thread};`,
    declaration ? `import declaration from ${declaration};` : 'const declaration = undefined;',
    "setInferenceWorkerScript(new URL('./inference.mjs', import.meta.url));",
    `await runBundled(declaration, { ...${info}, dir: import.meta.dirname });`,
  ].join('\n');
}

/** esbuild's settings for a container entry: one minified ESM file and its source map. */
async function bundleEntry(contents: string, sourcefile: string, outfile: string, define: Record<string, string> = {}): Promise<void> {
  await build({
    define,
    stdin: { contents, resolveDir: ROOT, sourcefile, loader: 'ts' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    // tsx is only imported by watch mode, from source; containers never load it. onnxruntime-common
    // is bundled (the main thread's tensors), onnxruntime-node's own copy loads with it on the thread.
    external: ['onnxruntime-node', 'tsx', 'tsx/*'],
    // CommonJS dependencies inside an ESM bundle still call require() for Node's built-ins.
    banner: { js: "import { createRequire as __modelfnRequire } from 'node:module'; const require = __modelfnRequire(import.meta.url);" },
    outfile,
    logLevel: 'silent',
  });
}

/**
 * Writes `<outRoot>/<name>/main.mjs`, `main.mjs.map` and the model.
 *
 * @example await bundleFunction(fn, 'dist');
 */
export async function bundleFunction(fn: ResolvedFunction, outRoot: string): Promise<BundleResult> {
  const outDir = join(outRoot, fn.name);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, 'main.mjs');
  // The model files, so that the inference thread started first creates the likely session early (runtime/serve/early-thread.ts).
  const models: BundleModels = { default: fn.modelFile, versions: Object.fromEntries(fn.versions.map((v) => [v.version, v.modelFile])) };
  await bundleEntry(entrySource(fn), `functions/${folderOf(fn)}/entry.ts`, outfile, { MODELFN_BUNDLE_MODELS: JSON.stringify(models) });
  const thread = JSON.stringify(join(ROOT, 'runtime/engine/inference-entry.ts'));
  await bundleEntry(`import ${thread};\n`, `functions/${folderOf(fn)}/inference-entry.ts`, join(outDir, 'inference.mjs'));
  // Every version's model: one image serves each version, the one its containers name (MODELFN_VERSION).
  for (const version of fn.versions) {
    mkdirSync(dirname(join(outDir, version.modelFile)), { recursive: true });
    copyFileSync(version.modelPath, join(outDir, version.modelFile));
  }
  const model = join(outDir, fn.modelFile);
  // Example files the docs pages send (routeDocs exampleFile) travel with the function.
  for (const doc of Object.values(fn.routeDocs)) {
    if (!doc.exampleFile) continue;
    mkdirSync(dirname(join(outDir, doc.exampleFile)), { recursive: true });
    copyFileSync(join(fn.dir, doc.exampleFile), join(outDir, doc.exampleFile));
  }
  return {
    name: fn.name,
    outDir: relative(process.cwd(), outDir) || '.',
    bundleBytes: statSync(outfile).size,
    mapBytes: statSync(`${outfile}.map`).size,
    modelBytes: statSync(model).size,
  };
}

/** Where the activator's bundle goes under the output folder. */
export const ACTIVATOR_DIR = '_activator';

/**
 * Writes the activator's bundle, `<outRoot>/_activator/main.mjs` (scale to zero on compose).
 *
 * @example await bundleActivator('dist');
 */
export async function bundleActivator(outRoot: string): Promise<string> {
  const outDir = join(outRoot, ACTIVATOR_DIR);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const main = JSON.stringify(join(ROOT, 'runtime/activator/main.ts'));
  const prime = JSON.stringify(PRIME_COMPILE_CACHE);
  // The image build's run (docker/function.Dockerfile) only compiles: the activator needs an engine.
  await bundleEntry([
    "import * as nodeModule from 'node:module';",
    `import { runActivator } from ${main};`,
    `if (process.argv.includes(${prime})) nodeModule.flushCompileCache?.();`,
    'else await runActivator();',
  ].join('\n'), 'runtime/activator/entry.ts', join(outDir, 'main.mjs'));
  return outDir;
}
