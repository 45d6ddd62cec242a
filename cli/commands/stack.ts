/**
 * `modelfn start`, `build`, `up`, `down` and `logs`: the npm scripts, as subcommands.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { ConfigError } from '../../runtime/core/config.ts';
import type { StackCommand } from '../../build/docker/stack.ts';
import { CliError, parse, type Command } from '../args.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const log = (line: string) => process.stdout.write(`${line}\n`);

/** The engine's own output is long: the first line says what failed, the rest only on request. */
function engineError(err: unknown): CliError {
  const [first, ...rest] = String((err as Error)?.message ?? err).split('\n');
  if (rest.length && process.env.MODELFN_DEBUG) process.stderr.write(`${rest.join('\n')}\n`);
  return new CliError(rest.length && !process.env.MODELFN_DEBUG ? `${first} (MODELFN_DEBUG=1 shows the output)` : first);
}

export const start: Command = {
  name: 'start',
  summary: 'serve every function on one port, without Docker (npm start)',
  help: `usage: modelfn start [--functions DIR] [--port N] [--host ADDRESS] [--watch]

The same as npm start: every function in DIR (default: functions) on one port (PORT, default
8080), routed as the nginx gateway routes them. --watch reloads a function when its files change
(npm run dev). Open http://localhost:8080/ in a browser to try each function.
`,
  async run(args) {
    const parsed = parse(this, args, {
      functions: { type: 'string' }, port: { type: 'string', short: 'p' }, host: { type: 'string' }, watch: { type: 'boolean' },
    }, [0, 0]);
    if (!parsed) return 0;
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), resolve(ROOT, 'cli/commands/start.ts'), ...args], { stdio: 'inherit' });
    // Ctrl-C reaches both processes; a SIGTERM sent to this one alone is passed on.
    process.once('SIGTERM', () => child.kill('SIGTERM'));
    return new Promise((done) => child.on('exit', (code, signal) => done(code ?? (signal ? 1 : 0))));
  },
};

export const build: Command = {
  name: 'build',
  summary: 'bundles, generated gateway files, and with --images the container images',
  help: `usage: modelfn build [--images] [--check] [--functions DIR] [--out DIR]

The same as npm run build: validates every declaration at once, bundles each function into
DIR/<name>/ (default: dist), and writes the generated files (nginx/, docker-compose.yml, deploy/).
  --images   also build the runtime, function and gateway images (needs Docker)
  --check    only check that the generated files are up to date (exit 1 if not)
`,
  async run(args) {
    const parsed = parse(this, args, {
      images: { type: 'boolean' }, check: { type: 'boolean' }, functions: { type: 'string', default: 'functions' }, out: { type: 'string', default: 'dist' },
    }, [0, 0]);
    if (!parsed) return 0;
    // The build's tools (esbuild and the rest) load only when a build runs.
    const { runBuild } = await import('../../build/build.ts');
    try {
      return await runBuild({
        functionsDir: resolve(parsed.values.functions as string),
        outDir: resolve(parsed.values.out as string),
        root: process.cwd(),
        images: Boolean(parsed.values.images),
        check: Boolean(parsed.values.check),
        log,
      });
    } catch (err) {
      if (err instanceof ConfigError) throw new CliError(err.message);
      throw engineError(err);
    }
  },
};

function stackCommand(name: StackCommand, summary: string, help: string): Command {
  return {
    name,
    summary,
    help,
    async run(args) {
      const parsed = parse(this, args, name === 'logs' ? { follow: { type: 'boolean', short: 'f' } } : {}, [0, 0]);
      if (!parsed) return 0;
      const { runStack } = await import('../../build/docker/stack.ts');
      try {
        return await runStack(name, { root: process.cwd(), log, follow: Boolean(parsed.values.follow) });
      } catch (err) {
        throw engineError(err);
      }
    },
  };
}

export const up = stackCommand('up', 'build everything and start the compose stack (npm run up)', `usage: modelfn up

The same as npm run up: bundles, images, and the compose stack, then waits until every function
answers through the gateway (127.0.0.1:8080; MODELFN_HOST and MODELFN_PORT change it). Needs Docker.
`);

export const down = stackCommand('down', 'stop the compose stack, leaving nothing behind (npm run down)', `usage: modelfn down

The same as npm run down: removes the stack's containers, networks and volumes.
`);

export const logs = stackCommand('logs', "the compose stack's logs (npm run logs)", `usage: modelfn logs [--follow]

The last 200 lines of every service's logs; --follow (-f) keeps printing new ones.
`);
