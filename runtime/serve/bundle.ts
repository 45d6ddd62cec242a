/**
 * The entry point of a bundled function: what each container runs. build.ts generates a tiny
 * entry that imports the function's declaration and calls `runBundled`.
 */
// A namespace import: Node 20 (local mode) has no flushCompileCache, and a named import would not link.
import * as nodeModule from 'node:module';
import { ConfigError, readConfig } from '../core/config.ts';
import { DeclarationError } from '../function/define.ts';
import { resolveFunction } from '../function/discover.ts';
import { createLogger } from '../core/log.ts';
import { ModelLoadError } from '../engine/model.ts';
import { PRIME_COMPILE_CACHE, PRIME_SWITCH } from './early-plan.ts';
import { endEarlyThread } from '../engine/inference-thread.ts';
import { startControl } from './control.ts';
import { exitOnSignals, startFunction } from './server.ts';
import { serveWithWorkers } from './workers.ts';

declare const MODELFN_CHECKED_DIGEST: string | undefined;
/**
 * The digest of the declaration the build checked (esbuild's define in builder/bundle.ts):
 * the same declaration at start is not checked again, so zod does not load. Undefined where
 * this runs from source.
 */
const CHECKED_DIGEST = typeof MODELFN_CHECKED_DIGEST === 'undefined' ? undefined : MODELFN_CHECKED_DIGEST;

export interface BundleInfo {
  /** The function's folder name in the source tree (the default name). */
  folder: string;
  /** Where the bundle and its model are at run time. */
  dir: string;
  /** The declaration file in the source tree, for messages. */
  declarationFile?: string;
}

/**
 * Serves a bundled function; exits 1 with one line on stderr when it cannot start.
 *
 * @example await runBundled(declaration, { folder: 'iris', dir: import.meta.dirname });
 */
export async function runBundled(declaration: unknown, info: BundleInfo): Promise<void> {
  if (process.argv.includes(PRIME_COMPILE_CACHE)) return primeCompileCache(declaration, info);
  try {
    const { config, logger, fn } = await prepare(declaration, info);
    await serveWithWorkers(config.workers, async () => {
      const running = await startFunction(fn, config, logger);
      // With several workers each would hold its own state: the activator needs one process.
      if (config.workers === 1) await startControl(running, config, logger);
      exitOnSignals(running, logger);
    }, logger);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DeclarationError || err instanceof ModelLoadError) {
      process.stderr.write(`modelfn: ${err.message}\n`);
      await endEarlyThread();
      process.exit(1);
    }
    throw err;
  }
}

/** The bundle's settings, logger and function, its declaration checked only if its build did not check it. */
async function prepare(declaration: unknown, info: BundleInfo) {
  const config = readConfig();
  const logger = createLogger(config.logLevel);
  const fn = await resolveFunction(info.dir, declaration, info.declarationFile, config, { folderName: info.folder, checked: CHECKED_DIGEST });
  return { config, logger, fn };
}

/**
 * The image build's start (PRIME_COMPILE_CACHE). Only an optimisation: a function that does not
 * start (or not within a minute) leaves the image without the cache, and says why; the image
 * builds as before, and its containers report the failure when they start.
 */
async function primeCompileCache(declaration: unknown, info: BundleInfo): Promise<void> {
  if (process.env[PRIME_SWITCH] === 'false') return;
  const skip = async (why: string) => {
    process.stderr.write(`modelfn: the compile cache is not filled: ${why}\n`);
    await endEarlyThread();
    process.exit(0);
  };
  setTimeout(() => void skip('the function did not start within 60 s'), 60_000).unref();
  try {
    const { config, logger, fn } = await prepare(declaration, info);
    const running = await startFunction(fn, { ...config, host: '127.0.0.1', port: 0, workers: 1 }, logger);
    const res = await fetch(`${running.url}/v2/health/ready`);
    await res.arrayBuffer();
    // Stopping releases the model: the inference thread ends and writes its share of the cache.
    await running.shutdown();
    nodeModule.flushCompileCache?.();
    process.exit(0);
  } catch (err) {
    await skip(String((err as Error)?.message ?? err).split('\n')[0]);
  }
}
