import { describe, expect, it } from 'vitest';
import { chooseVersion, murmurHash2, parseSplitHeader, routeRequest, splitBounds, splitHeaderValue, versionAt } from './traffic.ts';

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

describe('routeRequest: which version answers a request, and which gets a copy', () => {
  const fn = { name: 'flowers', traffic: split8020, shadow: [{ version: '3', percent: 100 }], versions: [{ version: '1' }, { version: '2' }, { version: '3' }] };

  it('sends a versioned protocol path to its version, never copied, whatever the split or key', () => {
    expect(routeRequest(fn, '/v2/models/flowers/versions/1/infer', 'user-42')).toEqual({ serve: '1' });
    expect(routeRequest(fn, '/v2/models/flowers/versions/3', undefined, () => 0)).toEqual({ serve: '3' });
    // A version that does not exist goes to the highest, which answers 404 listing the versions.
    expect(routeRequest(fn, '/v2/models/flowers/versions/9/ready')).toEqual({ serve: '3' });
  });

  it('splits every other path of the function by the key, copying to the shadow', () => {
    expect(routeRequest(fn, '/v2/models/flowers/infer', 'user-42')).toEqual({ serve: '2', shadow: '3' });
    expect(routeRequest(fn, '/flowers/predict', 'user-1')).toEqual({ serve: '1', shadow: '3' });
    expect(routeRequest({ ...fn, shadow: [] }, '/flowers/predict', 'user-1')).toEqual({ serve: '1' });
  });

  it('copies a partial shadow share by its own point of the line, the same clients every time', () => {
    const half = { ...fn, shadow: [{ version: '3', percent: 50 }] };
    let copied = 0;
    for (let i = 0; i < 10_000; i++) if (routeRequest(half, '/flowers/predict', `u${i}`).shadow) copied++;
    expect(Math.abs(copied / 10_000 - 0.5)).toBeLessThan(0.02);
    expect(routeRequest(half, '/flowers/predict', 'u17')).toEqual(routeRequest(half, '/flowers/predict', 'u17'));
  });
});

describe('the split in force as the gateway tells it (X-Modelfn-Split)', () => {
  const split = { traffic: [{ version: '1', percent: 33.33 }, { version: '2', percent: 66.67 }], shadow: [{ version: '3', percent: 50 }] };

  it('reads back what it writes', () => {
    expect(splitHeaderValue(split.traffic, split.shadow)).toBe('traffic 1=33.33 2=66.67; shadow 3=50');
    expect(parseSplitHeader(splitHeaderValue(split.traffic, split.shadow), ['1', '2', '3'])).toEqual(split);
    expect(parseSplitHeader('traffic 1=0 2=100; shadow none', ['1', '2'])).toEqual({ traffic: [{ version: '1', percent: 0 }, { version: '2', percent: 100 }], shadow: [] });
  });

  it('ignores a header that is missing, malformed or names a version the function lacks', () => {
    for (const value of [undefined, '', 'traffic 1=80', 'traffic 1=80 2=x; shadow none', 'traffic 9=100; shadow none', 'traffic 1=100; shadow 7=5']) {
      expect(parseSplitHeader(value, ['1', '2']), String(value)).toBeUndefined();
    }
  });
});
