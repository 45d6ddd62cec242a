/**
 * `modelfn start` (npm start) and `modelfn dev` (npm run dev): every function in one process on
 * one port, routed as the nginx gateway routes them; `dev` reloads a function when its files change.
 */
import { resolve } from 'node:path';
import { CliError, parse, type Command } from '../args.ts';
import { listenEnv, settingsHelp } from '../settings.ts';

async function startAll(values: Record<string, string | boolean | undefined>, watch: boolean): Promise<number> {
  const { readConfig } = await import('../../runtime/core/config.ts');
  const { createLogger } = await import('../../runtime/core/log.ts');
  const { startEmbedded } = await import('../../runtime/gateway/embedded.ts');
  const config = readConfig(listenEnv(values));
  const logger = createLogger(config.logLevel);
  let server;
  try {
    server = await startEmbedded({ functionsDir: resolve(String(values.functions ?? 'functions')), config, logger, watch });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new CliError(`port ${config.port} is in use: choose another with --port or PORT`);
    throw err;
  }
  for (const slot of server.slots()) {
    if (slot.failure) process.stderr.write(`modelfn: ${slot.fn.name} failed to load and answers 503: ${slot.failure}\n`);
  }
  process.stderr.write(`modelfn: serving ${server.slots().length} functions at ${server.url}/ (open it in a browser to try them)\n`);
  return new Promise<number>((done) => {
    const stop = (signal: string) => {
      logger.log('info', 'signal received', { signal });
      void server.shutdown().then(() => done(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

const OPTIONS = { functions: { type: 'string' }, port: { type: 'string', short: 'p' }, host: { type: 'string' } } as const;

export const start: Command = {
  name: 'start',
  summary: 'serve every function on one port, without Docker (npm start)',
  get help() {
    return `usage: modelfn start [--functions DIR] [--port N] [--host ADDRESS] [--watch]

The same as npm start: every function in DIR (default: functions) on one port (PORT, default
8080), routed as the nginx gateway routes them: /<prefix>/..., /v2/models/<name>/...,
/v2/health/live|ready, GET /. --watch reloads a function when its files change (modelfn dev).
Open http://localhost:8080/ in a browser to try each function. Functions whose names or prefixes
collide are refused, every problem named.

${settingsHelp()}`;
  },
  async run(args) {
    const parsed = parse(this, args, { ...OPTIONS, watch: { type: 'boolean' } }, [0, 0]);
    if (!parsed) return 0;
    return startAll(parsed.values, Boolean(parsed.values.watch));
  },
};

export const dev: Command = {
  name: 'dev',
  summary: 'modelfn start, reloading a function when its files change (npm run dev)',
  get help() {
    return `usage: modelfn dev [--functions DIR] [--port N] [--host ADDRESS]

The same as npm run dev: modelfn start --watch.

${settingsHelp()}`;
  },
  async run(args) {
    const parsed = parse(this, args, OPTIONS, [0, 0]);
    if (!parsed) return 0;
    return startAll(parsed.values, true);
  },
};
