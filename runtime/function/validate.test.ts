// One function set's problems, all of them, as the build, modelfn start and modelfn serve report them.
import { describe, expect, it } from 'vitest';
import { FunctionSetError, assertValidFunctionSet, functionSetProblems } from './validate.ts';

const fn = (name: string, prefix = `/${name}`) => ({ name, prefix, dir: `/nowhere/${name}`, declarationFile: `functions/${name}/function.ts` });

describe('functionSetProblems', () => {
  it('has nothing to say about distinct names and prefixes', () => {
    expect(functionSetProblems([fn('iris'), fn('digits'), fn('vad', '/audio/vad')])).toEqual([]);
  });

  it('names every collision, reserved prefix and nested prefix, each with both files', () => {
    expect(functionSetProblems([fn('a', '/same'), fn('b', '/same'), fn('a', '/other'), fn('c', '/metrics'), fn('d', '/same/deeper')])).toEqual([
      "functions/b/function.ts: prefix '/same' is also the prefix of functions/a/function.ts",
      "functions/a/function.ts: name 'a' is also the name of functions/a/function.ts",
      "functions/c/function.ts: prefix '/metrics' is reserved for the gateway (/metrics)",
      "functions/d/function.ts: prefix '/same/deeper' is inside '/same' of functions/a/function.ts",
      "functions/d/function.ts: prefix '/same/deeper' is inside '/same' of functions/b/function.ts",
    ]);
  });

  it('refuses the names of the deployment\'s own services (its compose and swarm service names)', () => {
    expect(functionSetProblems([fn('gateway', '/gw'), fn('activator', '/act')])).toEqual([
      "functions/gateway/function.ts: name 'gateway' is reserved for the deployment's own gateway service; rename the folder (or set `name`)",
      "functions/activator/function.ts: name 'activator' is reserved for the deployment's own activator service; rename the folder (or set `name`)",
    ]);
  });

  it('refuses a lone function on a prefix under the gateway\'s own paths', () => {
    expect(functionSetProblems([fn('x', '/v2/x')])).toEqual(["functions/x/function.ts: prefix '/v2/x' is reserved for the gateway (/v2)"]);
    expect(functionSetProblems([fn('x', '/v2x')])).toEqual([]);
  });
});

describe('assertValidFunctionSet', () => {
  it('throws every problem, counted, one per line', () => {
    let error: unknown;
    try {
      assertValidFunctionSet([fn('a', '/same'), fn('b', '/same'), fn('c', '/_modelfn')]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FunctionSetError);
    expect((error as Error).message.split('\n')).toEqual([
      '2 problems:',
      "  - functions/b/function.ts: prefix '/same' is also the prefix of functions/a/function.ts",
      "  - functions/c/function.ts: prefix '/_modelfn' is reserved for the gateway (/_modelfn)",
    ]);
    expect(() => assertValidFunctionSet([fn('a')])).not.toThrow();
  });
});
