/**
 * Which version serves a request: the one place that decides it. Embedded mode calls
 * `chooseVersion` per request; the gateway renderers write the same split as nginx's
 * `split_clients` (builder/render/nginx.ts), whose hashing this module reproduces exactly, so a
 * traffic key lands on the same version in `npm start` and behind the gateway.
 */

/** The request header whose value keeps a client on one version (hash-based split). */
export const TRAFFIC_KEY_HEADER = 'X-Modelfn-Traffic-Key';
/** The response header naming the version that answered, on every route. */
export const VERSION_HEADER = 'X-Modelfn-Version';

/** Percent of requests per version, in version order (what `traffic` and `shadow` declare). */
export type Split = readonly { version: string; percent: number }[];

/**
 * nginx's MurmurHash2 (`ngx_murmur_hash2`, seed 0): the hash `split_clients` applies to its key.
 * Multiplications use Math.imul to wrap at 32 bits as C's uint32_t does.
 *
 * @example murmurHash2('user-42') // the value nginx computes for the same bytes
 */
export function murmurHash2(key: string | Uint8Array): number {
  const data = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  const m = 0x5bd1e995;
  let len = data.length;
  let h = len >>> 0;
  let i = 0;
  while (len >= 4) {
    let k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
    i += 4;
    len -= 4;
  }
  // The tail, as the C switch falls through from 3 to 1.
  if (len === 3) h ^= data[i + 2] << 16;
  if (len >= 2) h ^= data[i + 1] << 8;
  if (len >= 1) h = Math.imul(h ^ data[i], m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/** A percentage as nginx reads it: hundredths of a percent. */
export const toHundredths = (percent: number) => Math.round(percent * 100);

/** Whether the shares cover every request (they sum to 100). */
export const isFull = (split: Split) => split.reduce((sum, s) => sum + toHundredths(s.percent), 0) === 10000;

/** The index of the last share above 0 (the one nginx gets as `*` in a full split), or -1. */
export function lastNonZero(split: Split): number {
  for (let i = split.length - 1; i >= 0; i--) if (toHundredths(split[i].percent) > 0) return i;
  return -1;
}

/**
 * The upper bounds of each share on the 32-bit hash line, as nginx computes them: a percentage
 * is kept to two decimals (hundredths of a percent), each share's width is
 * hundredths * 0xffffffff / 10000 truncated, and the bounds are the running sum of the widths.
 * A share of 0 gets no bound (-1: never chosen). In a split summing to 100 the last share is
 * written `*` (the rest of the line), so the truncations leave no gap at the top.
 */
export function splitBounds(split: Split): number[] {
  let last = 0;
  const full = isFull(split);
  const star = lastNonZero(split);
  return split.map(({ percent }, i) => {
    const hundredths = toHundredths(percent);
    if (hundredths === 0) return -1;
    if (full && i === star) return Infinity;
    // 10000 * 0xffffffff stays below 2^53: exact in a double.
    last += Math.floor((hundredths * 0xffffffff) / 10000);
    return last;
  });
}

/**
 * Picks the version for a point on the hash line: the first share whose bound lies above it.
 * Shares summing to less than 100 leave the rest unserved (undefined), as `shadow` does.
 */
export function versionAt(split: Split, hash: number): string | undefined {
  const bounds = splitBounds(split);
  for (let i = 0; i < split.length; i++) if (bounds[i] >= 0 && hash < bounds[i]) return split[i].version;
  return undefined;
}

/**
 * Which version serves a request: the same version for the same traffic key, as nginx's
 * `split_clients` on the key; a request without a key falls at a random point of the line, so
 * the shares hold on average. Returns undefined when the point lies outside every share
 * (a shadow share below 100).
 *
 * @example chooseVersion([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], 'user-42') // '1' or '2', always the same
 */
export function chooseVersion(split: Split, key?: string, random: () => number = Math.random): string | undefined {
  const point = key ? murmurHash2(key) : Math.floor(random() * 0x100000000);
  return versionAt(split, point);
}

/** What `routeRequest` needs of a function. */
export interface Routed {
  name: string;
  traffic: Split;
  shadow: Split;
  versions: readonly { version: string }[];
}

/**
 * The versions a request goes to: the one that answers, and the one (if any) that gets a copy
 * whose answer is discarded. The protocol's versioned paths (`/v2/models/<name>/versions/<N>/...`)
 * always reach version N and are never copied; every other path of the function follows the
 * split, by the traffic key when the client sends one. A versioned path naming no version goes to
 * the highest one, which answers 404 naming the versions there are.
 *
 * @example routeRequest(fn, '/v2/models/iris/versions/1/infer') // { serve: '1' }
 */
export function routeRequest(fn: Routed, path: string, key?: string, random: () => number = Math.random): { serve: string; shadow?: string } {
  const versioned = `/v2/models/${fn.name}/versions/`;
  if (path.startsWith(versioned)) {
    const named = path.slice(versioned.length).split('/')[0];
    return { serve: fn.versions.some((v) => v.version === named) ? named : fn.versions[fn.versions.length - 1].version };
  }
  const serve = chooseVersion(fn.traffic, key, random) ?? fn.versions[fn.versions.length - 1].version;
  // The copy is chosen on its own point of the line: with a key, the same clients are shadowed every time.
  const shadow = fn.shadow.length ? chooseVersion(fn.shadow, key && `shadow:${key}`, random) : undefined;
  return shadow ? { serve, shadow } : { serve };
}

/**
 * The request header with which the gateway tells a function's `/stats` the split in force (it
 * may differ from the declared one once `modelfn traffic` changed it): nginx sets it on that one
 * location from the same configuration that splits the requests (builder/render/nginx.ts).
 */
export const SPLIT_HEADER = 'X-Modelfn-Split';

/**
 * A split and its shadow as SPLIT_HEADER carries them.
 *
 * @example splitHeaderValue([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], []) // 'traffic 1=80 2=20; shadow none'
 */
export function splitHeaderValue(traffic: Split, shadow: Split): string {
  const shares = (split: Split) => split.map((s) => `${s.version}=${s.percent}`).join(' ') || 'none';
  return `traffic ${shares(traffic)}; shadow ${shares(shadow)}`;
}

/**
 * SPLIT_HEADER read back; undefined when it is absent or malformed, or names a version the
 * function does not have (the caller then shows the declared split).
 *
 * @example parseSplitHeader('traffic 1=0 2=100; shadow none', ['1', '2']) // { traffic: [{ version: '1', percent: 0 }, ...], shadow: [] }
 */
export function parseSplitHeader(value: string | undefined, versions: readonly string[]): { traffic: Split; shadow: Split } | undefined {
  const match = /^traffic ([^;]+); shadow (.+)$/.exec(value?.trim() ?? '');
  if (!match) return undefined;
  const shares = (text: string): Split | undefined => {
    if (text === 'none') return [];
    const split = text.split(' ').map((share) => /^([0-9]+)=([0-9]+(?:\.[0-9]+)?)$/.exec(share));
    if (!split.every((m) => m && versions.includes(m[1]))) return undefined;
    return split.map((m) => ({ version: m![1], percent: Number(m![2]) }));
  };
  const traffic = shares(match[1]);
  const shadow = shares(match[2]);
  return traffic && shadow ? { traffic, shadow } : undefined;
}
