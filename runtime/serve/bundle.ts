/**
 * The entry point of a bundled function: what each container runs. build.ts generates a tiny
 * entry that imports the function's declaration and calls `runBundled`.
 */
import { ConfigError, readConfig } from '../core/config.ts';
import { DeclarationError } from '../function/define.ts';
import { resolveFunction } from '../function/discover.ts';
import { createLogger } from '../core/log.ts';
import { ModelLoadError } from '../engine/model.ts';
import { startControl } from './control.ts';
import { exitOnSignals, startFunction } from './server.ts';
import { serveWithWorkers } from './workers.ts';

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
  try {
    const config = readConfig();
    const logger = createLogger(config.logLevel);
    const fn = resolveFunction(info.dir, declaration, info.declarationFile, config, info.folder);
    await serveWithWorkers(config.workers, async () => {
      const running = await startFunction(fn, config, logger);
      // With several workers each would hold its own state: the activator needs one process.
      if (config.workers === 1) await startControl(running, config, logger);
      exitOnSignals(running, logger);
    }, logger);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DeclarationError || err instanceof ModelLoadError) {
      process.stderr.write(`modelfn: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}
