/**
 * The `modelfn` command (bin/modelfn.mjs runs it): scaffold, list and call functions, and run
 * the project, locally or with Docker Compose.
 *
 *   modelfn new hello --model ~/model.onnx
 *   modelfn invoke iris '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
 *
 * Exit codes: 0 success, 1 failure, 2 usage error; failures are reported in one line.
 */
import { VERSION } from '../runtime/core/version.ts';
import { CliError, UsageError, type Command } from './args.ts';
import { invoke } from './commands/invoke.ts';
import { list } from './commands/list.ts';
import { create } from './commands/new.ts';
import { build, down, logs, start, up } from './commands/stack.ts';

const COMMANDS: Command[] = [create, list, start, invoke, build, up, down, logs];

const HELP = `modelfn ${VERSION}: ONNX models as functions speaking the Open Inference Protocol

usage: modelfn <command> [options]   (modelfn <command> --help for its options)

commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(8)} ${c.summary}`).join('\n')}

example:
  modelfn new hello && modelfn start
  modelfn invoke hello '{"instances": [[1, 2, 3]]}'
`;

async function main(argv: string[]): Promise<number> {
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
    const where = command ? `modelfn ${command.name}` : 'modelfn';
    if (err instanceof UsageError) {
      process.stderr.write(`${where}: ${err.message} (see ${where} --help)\n`);
      return 2;
    }
    if (err instanceof CliError) {
      process.stderr.write(`${where}: ${err.message}\n`);
      return 1;
    }
    // A bug, not a user's mistake: keep the stack for the report.
    process.stderr.write(`${where}: unexpected error: ${(err as Error)?.stack ?? err}\n`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
