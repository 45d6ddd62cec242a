/**
 * `npm run serve -- <function-dir> [--port N] [--host H]`: serves one function from source.
 */
import { parseArgs } from 'node:util';
import { ConfigError, SETTINGS, readConfig } from '../../runtime/core/config.ts';
import { DeclarationError } from '../../runtime/function/define.ts';
import { loadFunctionDir } from '../../runtime/function/discover.ts';
import { createLogger } from '../../runtime/core/log.ts';
import { ModelLoadError } from '../../runtime/engine/model.ts';
import { exitOnSignals, startFunction } from '../../runtime/serve/server.ts';
import { serveWithWorkers } from '../../runtime/serve/workers.ts';

const USAGE = `usage: npm run serve -- <function-dir> [--port N] [--host ADDRESS]

Serves one function (a folder holding a model and, optionally, function.ts).

Settings (environment variables):
${SETTINGS.map((s) => `  ${s.env.padEnd(28)} ${s.default.padEnd(10)} ${s.description}`).join('\n')}
`;

function fail(message: string, code: number): never {
  process.stderr.write(`modelfn: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { port: { type: 'string', short: 'p' }, host: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (parsed.positionals.length !== 1) fail(`expected one function folder\n${USAGE}`, 2);
  const env = { ...process.env };
  if (parsed.values.port !== undefined) env.PORT = parsed.values.port;
  if (parsed.values.host !== undefined) env.MODELFN_HOST = parsed.values.host;
  try {
    const config = readConfig(env);
    const logger = createLogger(config.logLevel);
    const fn = await loadFunctionDir(parsed.positionals[0], config);
    await serveWithWorkers(config.workers, async () => {
      const running = await startFunction(fn, config, logger);
      exitOnSignals(running, logger);
    }, logger);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof DeclarationError || err instanceof ModelLoadError) fail(err.message, 1);
    throw err;
  }
}

await main();
