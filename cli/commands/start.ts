/**
 * `npm start` / `npm run dev`: every function in one process on one port, routed as the nginx
 * gateway routes them. `--watch` (npm run dev) reloads a function when its files change.
 */
import { parseArgs } from 'node:util';
import { ConfigError, SETTINGS, readConfig } from '../../runtime/core/config.ts';
import { startEmbedded } from '../../runtime/gateway/embedded.ts';
import { createLogger } from '../../runtime/core/log.ts';

const USAGE = `usage: npm start -- [--functions DIR] [--port N] [--host ADDRESS] [--watch]

Serves every function in DIR (default: functions) on one port (default: PORT or 8080), with the
gateway's routes: /<prefix>/..., /v2/models/<name>/..., /v2/health/live|ready, GET /.

Settings (environment variables):
${SETTINGS.map((s) => `  ${s.env.padEnd(28)} ${s.default.padEnd(10)} ${s.description}`).join('\n')}
`;

function fail(message: string, code: number): never {
  process.stderr.write(`modelfn: ${message}\n`);
  process.exit(code);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      functions: { type: 'string', default: 'functions' },
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      watch: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}
if (parsed.values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const env = { ...process.env };
if (parsed.values.port !== undefined) env.PORT = parsed.values.port;
if (parsed.values.host !== undefined) env.MODELFN_HOST = parsed.values.host;
let config;
try {
  config = readConfig(env);
} catch (err) {
  if (err instanceof ConfigError) fail(err.message, 1);
  throw err;
}
const logger = createLogger(config.logLevel);
try {
  const server = await startEmbedded({ functionsDir: parsed.values.functions!, config, logger, watch: parsed.values.watch });
  for (const slot of server.slots()) {
    if (slot.failure) process.stderr.write(`modelfn: ${slot.fn.name} failed to load and answers 503: ${slot.failure}\n`);
  }
  process.stderr.write(`modelfn: serving ${server.slots().length} functions at ${server.url}/ (open it in a browser to try them)\n`);
  const stop = (signal: string) => {
    logger.log('info', 'signal received', { signal });
    void server.shutdown().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (err) {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE') fail(`port ${config.port} is in use: choose another with --port or PORT`, 1);
  throw err;
}
