import { describe, expect, it } from 'vitest';
import { ModelfnError, invalidInput } from '../core/errors.ts';
import { InexactIntegerError, parseJsonExact, stringifyExact, withExactIntegers } from './json-exact.ts';

describe('parseJsonExact', () => {
  it('reads what JSON.parse reads, for every kind of value', () => {
    const texts = [
      '{"a": [1, -2.5, 3e2, 0, -0, 1E-3], "b": {"c": null, "d": true, "e": false}, "f": "x\\"y\\\\z\\u00e9\\n"}',
      ' [ ] ', '{}', '"plain"', '12', '[[[]], {"": ""}]', '{"__proto__": {"polluted": 1}}', '\t[1,\r\n2]\n',
      '{"unicode": "日本語", "escaped": "\\ud83d\\ude00", "slash": "\\/"}',
      '[9007199254740991, -9007199254740991, 1.5e300, 123456789012345678901234.5]',
    ];
    for (const text of texts) expect(parseJsonExact(text)).toEqual(JSON.parse(text));
    const proto = parseJsonExact('{"__proto__": {"polluted": 1}}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(['__proto__']);
  });

  it('gives plain-digit integers beyond ±2^53 as BigInt, and nothing else', () => {
    expect(parseJsonExact('[9007199254740992, 9007199254740993, -9223372036854775808, 18446744073709551615, 9007199254740993.0, 1e20]'))
      .toEqual([9007199254740992n, 9007199254740993n, -9223372036854775808n, 18446744073709551615n, 9007199254740992, 1e20]);
  });
});

describe('withExactIntegers', () => {
  it('decodes once on the common path, and again from the text only for InexactIntegerError', () => {
    const seen: unknown[] = [];
    const decode = (json: unknown) => {
      seen.push(json);
      if (typeof json === 'number') throw new InexactIntegerError('inexact');
      return json;
    };
    expect(withExactIntegers('[1]', [1], decode)).toEqual([1]);
    expect(seen).toHaveLength(1);
    expect(withExactIntegers('9007199254740993', 9007199254740992, decode)).toBe(9007199254740993n);
    expect(() => withExactIntegers('1', 1, () => { throw invalidInput('other'); })).toThrow('other');
  });

  it('answers a 400, not a crash, for nesting deeper than its stack', () => {
    const text = `${'['.repeat(200_000)}9007199254740993${']'.repeat(200_000)}`;
    const err = (() => {
      try {
        withExactIntegers(text, JSON.parse(text), () => { throw new InexactIntegerError('inexact'); });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ModelfnError);
    expect((err as ModelfnError).message).toBe('request JSON is nested too deeply');
  });
});

describe('stringifyExact', () => {
  it('writes BigInts as digits and everything else as JSON.stringify does', () => {
    const value = { a: [1n, -9223372036854775808n, 1.5, 'x"y', null, true], b: { c: 18446744073709551615n } };
    expect(stringifyExact(value)).toBe('{"a":[1,-9223372036854775808,1.5,"x\\"y",null,true],"b":{"c":18446744073709551615}}');
    expect(stringifyExact({ a: [1, 'é'], b: null })).toBe(JSON.stringify({ a: [1, 'é'], b: null }));
  });
});
