/**
 * What the commands that drive the Docker engine share: their output, and the engine's long
 * failures cut to one line.
 */
import { CliError, isExpectedFailure } from './errors.ts';

export const log = (line: string) => process.stdout.write(`${line}\n`);

/**
 * The engine's own output is long: the first line says what failed, the rest only on request.
 * Errors already meant for the user pass through unchanged.
 */
export function engineError(err: unknown): Error {
  if (isExpectedFailure(err)) return err;
  const [first, ...rest] = String((err as Error)?.message ?? err).split('\n');
  if (rest.length && process.env.MODELFN_DEBUG) process.stderr.write(`${rest.join('\n')}\n`);
  return new CliError(rest.length && !process.env.MODELFN_DEBUG ? `${first} (MODELFN_DEBUG=1 shows the output)` : first);
}
