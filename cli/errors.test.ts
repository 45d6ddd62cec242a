// The one mapping of failures to exit codes and messages.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../runtime/core/config.ts';
import { FunctionSetError } from '../runtime/function/validate.ts';
import { CliError, UsageError, reportFailure } from './errors.ts';

function report(err: unknown) {
  let text = '';
  const code = reportFailure(err, 'modelfn serve', (t) => (text += t));
  return { code, text };
}

describe('reportFailure', () => {
  it('exits 2 on a wrong invocation, pointing at the help', () => {
    expect(report(new UsageError('expected one function folder'))).toEqual({ code: 2, text: 'modelfn serve: expected one function folder (see modelfn serve --help)\n' });
  });

  it("exits 1 with the message alone for failures meant for the user, the runtime's included", () => {
    expect(report(new CliError('port 8080 is in use'))).toEqual({ code: 1, text: 'modelfn serve: port 8080 is in use\n' });
    expect(report(new ConfigError('PORT="x": expected an integer from 0 to 65535'))).toEqual({ code: 1, text: 'modelfn serve: PORT="x": expected an integer from 0 to 65535\n' });
    expect(report(new FunctionSetError(['a', 'b']))).toEqual({ code: 1, text: 'modelfn serve: 2 problems:\n  - a\n  - b\n' });
  });

  it('exits 1 keeping the stack for anything else: a bug to report', () => {
    const { code, text } = report(new TypeError('x is undefined'));
    expect(code).toBe(1);
    expect(text).toMatch(/^modelfn serve: unexpected error: TypeError: x is undefined\n\s+at /);
  });
});
