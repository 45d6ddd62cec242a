/**
 * Bundling one function with esbuild: minified ESM files with their source maps, the server
 * (main.mjs and its chunks) and its inference thread's script (inference.mjs: onnxruntime and the engine only),
 * onnxruntime kept external (it is native, and lives in the shared runtime image), the model
 * copied beside them.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { build, type BuildOptions, type Plugin } from 'esbuild';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { PRIME_COMPILE_CACHE, type BundleModels } from '../runtime/serve/early-plan.ts';
import { folderOf } from './functions.ts';

export const ROOT = join(import.meta.dirname, '..');

export interface BundleResult {
  name: string;
  outDir: string;
  bundleBytes: number;
  mapBytes: number;
  modelBytes: number;
}

/**
 * The server's code: the declaration (when there is one) handed to the runtime's main. main.mjs
 * (mainSource) imports it once the inference thread has been started.
 */
function serverSource(fn: ResolvedFunction): string {
  const main = JSON.stringify(join(ROOT, 'runtime/serve/bundle.ts'));
  const info = JSON.stringify({ folder: folderOf(fn), declarationFile: fn.declarationFile });
  // declarationFile is said relative to the working directory (displayPath), which may be a project outside this repository.
  const declaration = fn.declarationFile ? JSON.stringify(resolve(process.cwd(), fn.declarationFile)) : undefined;
  const thread = JSON.stringify(join(ROOT, 'runtime/engine/inference-thread.ts'));
  return [
    `import { runBundled } from ${main};`,
    `import { setInferenceWorkerScript } from ${thread};`,
    declaration ? `import declaration from ${declaration};` : 'const declaration = undefined;',
    "setInferenceWorkerScript(new URL('./inference.mjs', import.meta.url));",
    `await runBundled(declaration, { ...${info}, dir: import.meta.dirname });`,
  ].join('\n');
}

/**
 * main.mjs, what a container runs: it starts the inference thread (early-thread.ts, a few small
 * modules), then imports the server's code (a chunk of its own, Hono, zod, the pages, the
 * declaration), so the thread loads onnxruntime and creates the session while Node loads and
 * evaluates that chunk. Modules both need (the inference thread's handle among them) are one copy
 * in a shared chunk.
 */
function mainSource(serverFile: string): string {
  const early = JSON.stringify(join(ROOT, 'runtime/serve/early-thread.ts'));
  return [`import ${early};`, `await import(${JSON.stringify(serverFile)});`].join('\n');
}

/** esbuild's settings for a container's code: minified ESM with source maps. */
function buildOptions(define: Record<string, string>): BuildOptions {
  return {
    define,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    // tsx is only imported by watch mode, from source; containers never load it. onnxruntime-common
    // is bundled (the main thread's tensors); onnxruntime-node stays the installed package's for the
    // main thread (loaded only without an inference thread), and the thread's script bundles its
    // JavaScript (bundleEntry's withOrt).
    external: ['onnxruntime-node', 'tsx', 'tsx/*'],
    // CommonJS dependencies inside an ESM bundle still call require() for Node's built-ins.
    banner: { js: "import { createRequire as __modelfnRequire } from 'node:module'; const require = __modelfnRequire(import.meta.url);" },
    plugins: [http1Only],
    logLevel: 'silent',
  };
}

/**
 * @hono/node-server imports `node:http2` for its HTTP/2 checks; a function's server is HTTP/1.1,
 * so in a bundle it gets runtime/serve/http1-only.ts instead, and a container's start does not
 * load Node's http2 and tls.
 */
const http1Only: Plugin = {
  name: 'modelfn-http1-only',
  setup(build) {
    build.onResolve({ filter: /^(node:)?http2$/ }, (args) =>
      /[\\/]@hono[\\/]node-server[\\/]/.test(args.importer) ? { path: join(ROOT, 'runtime/serve/http1-only.ts') } : undefined);
  },
};

/**
 * onnxruntime-node's JavaScript, bundled into the inference thread's script: the thread then
 * resolves and reads one file instead of onnxruntime-node's and onnxruntime-common's two dozen at
 * each start. Its native binding stays a file of the installed package, required by the package's
 * own path (binding.js names it relative to itself, which a bundle would break).
 */
const ortBindingByPackage: Plugin = {
  name: 'modelfn-ort-binding',
  setup(build) {
    build.onLoad({ filter: /[\\/]onnxruntime-node[\\/]dist[\\/]binding\.js$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const relative = /require\(`\.\.\/bin\/napi-v6\/\$\{process\.platform\}\/\$\{process\.arch\}\/onnxruntime_binding\.node`\)/;
      if (!relative.test(source)) throw new Error(`${args.path}: onnxruntime-node no longer requires its binding as ../bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node; update builder/bundle.ts`);
      return { contents: source.replace(relative, 'require(`onnxruntime-node/bin/napi-v6/${process.platform}/${process.arch}/onnxruntime_binding.node`)'), loader: 'js' };
    });
  },
};

/** One entry into one minified ESM file and its source map; `withOrt` bundles onnxruntime-node's JavaScript too. */
async function bundleEntry(contents: string, sourcefile: string, outfile: string, withOrt = false): Promise<void> {
  const options = buildOptions({});
  if (withOrt) {
    options.external = options.external!.filter((name) => name !== 'onnxruntime-node');
    options.plugins = [...options.plugins!, ortBindingByPackage];
  }
  await build({ ...options, stdin: { contents, resolveDir: ROOT, sourcefile, loader: 'ts' }, outfile });
}

/**
 * Writes `<outRoot>/<name>/main.mjs` (and the chunks it imports), the thread's `inference.mjs`,
 * their source maps and the models.
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
  // esbuild splits from entry files (not stdin): the two generated sources go to a scratch folder.
  const scratch = mkdtempSync(join(tmpdir(), 'modelfn-entry-'));
  try {
    const server = join(scratch, 'server.ts');
    writeFileSync(server, serverSource(fn));
    writeFileSync(join(scratch, 'main.ts'), mainSource(server));
    await build({
      ...buildOptions({
        MODELFN_BUNDLE_MODELS: JSON.stringify(models),
        // The declaration this build checked: the bundle does not check it again (runtime/serve/bundle.ts).
        MODELFN_CHECKED_DIGEST: fn.checkedDigest === undefined ? 'undefined' : JSON.stringify(fn.checkedDigest),
      }),
      entryPoints: { main: join(scratch, 'main.ts') },
      splitting: true,
      outdir: outDir,
      outExtension: { '.js': '.mjs' },
      chunkNames: '[name]-[hash]',
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  const thread = JSON.stringify(join(ROOT, 'runtime/engine/inference-entry.ts'));
  await bundleEntry(`import ${thread};\n`, `functions/${folderOf(fn)}/inference-entry.ts`, join(outDir, 'inference.mjs'), true);
  // Every version's model: one image serves each version, the one its containers name (MODELFN_VERSION).
  for (const version of fn.versions) {
    mkdirSync(dirname(join(outDir, version.modelFile)), { recursive: true });
    copyFileSync(version.modelPath, join(outDir, version.modelFile));
  }
  const model = join(outDir, fn.modelFile);
  const serverFiles = readdirSync(outDir).filter((f) => f.endsWith('.mjs') && f !== 'inference.mjs');
  // Example files the docs pages send (routeDocs exampleFile) travel with the function.
  for (const doc of Object.values(fn.routeDocs)) {
    if (!doc.exampleFile) continue;
    mkdirSync(dirname(join(outDir, doc.exampleFile)), { recursive: true });
    copyFileSync(join(fn.dir, doc.exampleFile), join(outDir, doc.exampleFile));
  }
  return {
    name: fn.name,
    outDir: relative(process.cwd(), outDir) || '.',
    // The server's files: main.mjs and its chunks (the inference thread's script is apart).
    bundleBytes: serverFiles.reduce((sum, f) => sum + statSync(join(outDir, f)).size, 0),
    mapBytes: serverFiles.reduce((sum, f) => sum + statSync(join(outDir, `${f}.map`)).size, 0),
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
