/**
 * What every subcommand shares: its shape and argument parsing with node:util parseArgs. The
 * failures and their exit codes are cli/errors.ts's.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from './errors.ts';

export { CliError, UsageError } from './errors.ts';

export interface Command {
  name: string;
  /** One line for `modelfn --help`. */
  summary: string;
  /** The command's `--help`. */
  help: string;
  /** Runs the command; resolves to its exit code. */
  run(args: string[]): Promise<number>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses a subcommand's arguments; `undefined` when `--help` was asked for (the help is printed).
 * Unknown options and a wrong number of positionals are usage errors.
 *
 * @example const parsed = parse(command, args, { port: { type: 'string' } }, [0, 1]);
 */
export function parse(command: Pick<Command, 'help'>, args: string[], options: Options, positionals: [min: number, max: number]): Parsed | undefined {
  let parsed: Parsed;
  try {
    parsed = parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true }) as Parsed;
  } catch (err) {
    // parseArgs explains at length how to pass a value starting with '-': keep its first sentence.
    throw new UsageError((err as Error).message.split(/\.\s/)[0].replace(/\.$/, ''));
  }
  if (parsed.values.help) {
    process.stdout.write(command.help);
    return undefined;
  }
  const [min, max] = positionals;
  const count = parsed.positionals.length;
  if (count < min) throw new UsageError(`missing argument${min - count > 1 ? 's' : ''}`);
  if (count > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}'`);
  return parsed;
}
