// The activator's settings from its environment: what it says when the list of scaled functions is wrong.
import { describe, expect, it } from 'vitest';
import { readActivatorConfig } from './config.ts';

const iris = { name: 'iris', prefix: '/iris', min: 0, max: 2, idleSeconds: 60, wake: 'start', concurrency: 32, timeoutMs: 30000, bodySize: 10485760 };

describe('readActivatorConfig', () => {
  it('reads the scaled functions the compose file lists', () => {
    expect(readActivatorConfig({ MODELFN_SCALED_FUNCTIONS: JSON.stringify([iris]) }).functions).toEqual([iris]);
  });

  it('names the function and the field that is wrong, or why the list is not JSON', () => {
    const problem = (value: string) => {
      try {
        readActivatorConfig({ MODELFN_SCALED_FUNCTIONS: value });
        return 'read';
      } catch (err) {
        return (err as Error).message;
      }
    };
    expect(problem(JSON.stringify([iris, { ...iris, prefix: 'digits' }])))
      .toBe('MODELFN_SCALED_FUNCTIONS: expected a JSON list of scaled functions (1.prefix: Invalid string: must start with "/")');
    expect(problem(JSON.stringify([{ ...iris, max: 0.5 }]))).toBe('MODELFN_SCALED_FUNCTIONS: expected a JSON list of scaled functions (0.max: Invalid input: expected int, received number)');
    expect(problem('{"iris": {}}')).toBe('MODELFN_SCALED_FUNCTIONS: expected a JSON list of scaled functions (the list: Invalid input: expected array, received object)');
    expect(problem('iris')).toMatch(/^MODELFN_SCALED_FUNCTIONS: expected a JSON list of scaled functions \(Unexpected token .*not valid JSON\)$/);
  });
});
