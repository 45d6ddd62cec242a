/**
 * The one mapping from failures to exit codes and messages, for every `modelfn` command:
 *
 *   0  success
 *   1  the command was understood but could not be done (a bad setting, declaration or model,
 *      a set of functions that collide, a port in use, the Docker engine failing)
 *   2  a wrong invocation (unknown command or option, missing or extra argument)
 *
 * Each failure is reported on stderr as `modelfn <command>: <message>`, on one line (a list of
 * problems gets one line each); anything else is a bug and keeps its stack for the report.
 */
/** A wrong invocation: exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The command was understood but could not be done: exit code 1. */
export class CliError extends Error {
  override name = 'CliError';
}

/**
 * Failures whose message is meant for the person who ran the command, by their `name`: the
 * runtime's classes are not imported here, so that `--help` loads neither zod nor onnxruntime.
 */
const EXPECTED = new Set(['UsageError', 'CliError', 'ConfigError', 'DeclarationError', 'FunctionSetError', 'ModelLoadError']);

/** Whether a failure's message is meant for the person who ran the command (not a bug). */
export const isExpectedFailure = (err: unknown): err is Error => err instanceof Error && EXPECTED.has(err.name);

/**
 * Reports a failure on stderr and answers the exit code.
 *
 * @example process.exitCode = reportFailure(err, 'modelfn serve');
 */
export function reportFailure(err: unknown, where: string, write: (text: string) => void = (t) => process.stderr.write(t)): number {
  if (err instanceof UsageError) {
    write(`${where}: ${err.message} (see ${where} --help)\n`);
    return 2;
  }
  if (isExpectedFailure(err)) {
    write(`${where}: ${(err as Error).message}\n`);
    return 1;
  }
  // A bug, not a user's mistake: keep the stack for the report.
  write(`${where}: unexpected error: ${(err as Error)?.stack ?? err}\n`);
  return 1;
}
