import { describe, expect, it } from 'vitest';
import { chooseVersion, murmurHash2, splitBounds, versionAt } from './traffic.ts';

const split8020 = [{ version: '1', percent: 80 }, { version: '2', percent: 20 }];
const thirds = [{ version: '1', percent: 33.33 }, { version: '2', percent: 33.33 }, { version: '3', percent: 33.34 }];

describe('the traffic split (nginx split_clients hashing)', () => {
  // Assignments nginx 1.22 made for these keys with
  //   split_clients "$arg_k" $a { 80% "1"; * "2"; }
  //   split_clients "$arg_k" $b { 33.33% "1"; 33.33% "2"; * "3"; }
  //   split_clients "$arg_k" $c { 0.5% "x"; 2.0% "y"; }
  // (checked on 2,000 keys when this was written: no difference).
  const fromNginx: [string, string, string, string | undefined][] = [
    ['user-1', '1', '1', 'x'],
    ['user-42', '2', '3', undefined],
    ['a', '1', '2', undefined],
    ['abc', '1', '1', undefined],
    ['session-xyz', '1', '3', undefined],
    ['12345', '1', '3', undefined],
    ['k-7', '2', '3', undefined],
  ];
  it.each(fromNginx)('puts key %s where nginx does', (key, a, b, c) => {
    expect(chooseVersion(split8020, key)).toBe(a);
    expect(chooseVersion(thirds, key)).toBe(b);
    expect(chooseVersion([{ version: 'x', percent: 0.5 }, { version: 'y', percent: 2 }], key)).toBe(c);
  });

  it('hashes the same key to the same value every time, over the whole 32-bit range', () => {
    expect(murmurHash2('user-42')).toBe(murmurHash2('user-42'));
    expect(murmurHash2(new TextEncoder().encode('user-42'))).toBe(murmurHash2('user-42'));
    const hashes = Array.from({ length: 1000 }, (_, i) => murmurHash2(`k${i}`));
    expect(Math.min(...hashes)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...hashes)).toBeLessThanOrEqual(0xffffffff);
    expect(new Set(hashes).size).toBe(1000);
  });

  it('rounds percentages to hundredths and truncates each share as nginx documents (0.5% ends at 21474835, 2% at 107374180)', () => {
    expect(splitBounds([{ version: 'x', percent: 0.5 }, { version: 'y', percent: 2 }])).toEqual([21474836, 107374181]);
    expect(versionAt([{ version: 'x', percent: 0.5 }, { version: 'y', percent: 2 }], 21474835)).toBe('x');
    expect(versionAt([{ version: 'x', percent: 0.5 }, { version: 'y', percent: 2 }], 21474836)).toBe('y');
    expect(versionAt([{ version: 'x', percent: 0.5 }, { version: 'y', percent: 2 }], 107374181)).toBeUndefined();
    // 33.333 is 33.33 to nginx.
    expect(splitBounds([{ version: '1', percent: 33.333 }, { version: '2', percent: 66.667 }])[0]).toBe(splitBounds(thirds)[0]);
  });

  it('gives a full split\'s last share the rest of the line, and a 0% share nothing', () => {
    expect(versionAt(split8020, 0xffffffff)).toBe('2');
    expect(versionAt([{ version: '1', percent: 100 }, { version: '2', percent: 0 }], 0xffffffff)).toBe('1');
    expect(versionAt([{ version: '1', percent: 0 }, { version: '2', percent: 100 }], 0)).toBe('2');
    expect(versionAt([{ version: '3', percent: 10 }], 0xffffffff)).toBeUndefined();
  });

  it('splits requests without a key at random by the same percentages', () => {
    const counts = { '1': 0, '2': 0 };
    for (let i = 0; i < 20_000; i++) counts[chooseVersion(split8020) as '1' | '2']++;
    expect(counts['2'] / 20_000).toBeGreaterThan(0.18);
    expect(counts['2'] / 20_000).toBeLessThan(0.22);
    // The random point is used as a hash: the ends of [0, 1) reach the ends of the line.
    expect(chooseVersion(split8020, undefined, () => 0)).toBe('1');
    expect(chooseVersion(split8020, undefined, () => 0.9999999999)).toBe('2');
  });

  it('spreads many distinct keys within a point of the split', () => {
    let second = 0;
    for (let i = 0; i < 20_000; i++) if (chooseVersion(split8020, `session-${i}`) === '2') second++;
    expect(Math.abs(second / 20_000 - 0.2)).toBeLessThan(0.01);
  });
});
