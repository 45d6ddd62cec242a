/**
 * `modelfn serve <function-dir>` (npm run serve): one function from source, served exactly as its
 * container serves it: its routes at the root, MODELFN_WORKERS processes, drained on SIGTERM.
 */
import { parse, UsageError, type Command } from '../args.ts';
import { listenEnv, settingsHelp } from '../settings.ts';

export const serve: Command = {
  name: 'serve',
  summary: 'serve one function from its folder, as its container does (npm run serve)',
  get help() {
    return `usage: modelfn serve <function-dir> [--port N] [--host ADDRESS]

Serves one function (a folder holding a model and, optionally, function.ts) at the root of
PORT (default 8080), as its container does.

${settingsHelp()}`;
  },
  async run(args) {
    const parsed = parse(this, args, { port: { type: 'string', short: 'p' }, host: { type: 'string' } }, [0, 1]);
    if (!parsed) return 0;
    if (parsed.positionals.length !== 1) throw new UsageError('expected one function folder');
    // The runtime loads only now: --help and usage errors stay fast.
    const { readConfig } = await import('../../runtime/core/config.ts');
    const { createLogger } = await import('../../runtime/core/log.ts');
    const { loadFunctionDir } = await import('../../runtime/function/discover.ts');
    const { assertValidFunctionSet } = await import('../../runtime/function/validate.ts');
    const { exitOnSignals, startFunction } = await import('../../runtime/serve/server.ts');
    const { serveWithWorkers } = await import('../../runtime/serve/workers.ts');
    const config = readConfig(listenEnv(parsed.values));
    const logger = createLogger(config.logLevel);
    const fn = await loadFunctionDir(parsed.positionals[0], config);
    assertValidFunctionSet([fn]);
    await serveWithWorkers(config.workers, async () => {
      const running = await startFunction(fn, config, logger);
      exitOnSignals(running, logger);
    }, logger);
    // Serving: the process ends on a signal (exitOnSignals, or the workers' primary).
    return new Promise<number>(() => {});
  },
};
