/**
 * The `modelfn` command, the project's one entry point (bin/modelfn.mjs runs it; the npm scripts
 * are aliases of its commands): serve functions from source, build and run them with Docker,
 * scaffold, list and call them.
 *
 *   modelfn new hello --model ~/model.onnx
 *   modelfn start
 *   modelfn invoke iris '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
 *
 * Exit codes and messages: cli/errors.ts (0 success, 1 failure, 2 usage error).
 */
import { VERSION } from '../runtime/core/version.ts';
import { UsageError, type Command } from './args.ts';
import { build } from './commands/build.ts';
import { invoke } from './commands/invoke.ts';
import { list } from './commands/list.ts';
import { create } from './commands/new.ts';
import { serve } from './commands/serve.ts';
import { down, logs, up } from './commands/stack.ts';
import { dev, start } from './commands/start.ts';
import { rollout } from './commands/rollout.ts';
import { traffic } from './commands/traffic.ts';
import { deploy, undeploy } from './commands/swarm.ts';
import { reportFailure } from './errors.ts';
import { stopWithParent } from './orphan.ts';

const COMMANDS: Command[] = [create, list, start, dev, serve, invoke, build, up, down, logs, traffic, rollout, deploy, undeploy];

const HELP = `modelfn ${VERSION}: ONNX models as functions speaking the Open Inference Protocol

usage: modelfn <command> [options]   (modelfn <command> --help for its options)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(9)} ${c.summary}`).join('\n')}

example:
  modelfn new hello && modelfn start
  modelfn invoke hello '{"instances": [[1, 2, 3]]}'
`;

async function main(argv: string[]): Promise<number> {
  stopWithParent();
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  try {
    if (!command) throw new UsageError(`unknown command '${name}'; commands: ${COMMANDS.map((c) => c.name).join(', ')}`);
    return await command.run(args);
  } catch (err) {
    return reportFailure(err, command ? `modelfn ${command.name}` : 'modelfn');
  }
}

process.exit(await main(process.argv.slice(2)));
