/**
 * Load from a real generator: wrk (Debian's), one thread, N connections, a fixed request body.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../builder/docker/images.ts';

/** What a real client sends besides the body: curl --compressed, Python requests, Go, browsers. */
export const REAL_CLIENT_HEADERS: Record<string, string> = { 'Accept-Encoding': 'gzip, deflate', Accept: '*/*', 'User-Agent': 'python-requests/2.32.3' };

export interface LoadRequest {
  url: string;
  body: Uint8Array | string;
  headers: Record<string, string>;
}

export interface LoadResult {
  rps: number;
  /** Median and 99th percentile latency in milliseconds. */
  p50: number;
  p99: number;
  requests: number;
  /** Non-2xx answers and socket errors. */
  errors: number;
  /** What the errors were, as wrk counts them (e.g. `non-2xx 3, socket read 1`); empty without errors. */
  errorKinds: string;
}

function ms(value: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(value.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60_000;
}

/** Parses wrk's report (with --latency). */
export function parseWrk(out: string): LoadResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((n, v) => n + Number(v), 0) : 0;
  const kinds: [string, number][] = [['non-2xx', non2xx], ...['connect', 'read', 'write', 'timeout'].map((k, i): [string, number] => [`socket ${k}`, Number(socket?.[i + 1] ?? 0)])];
  const statuses = [...out.matchAll(/^status (\d{3}): (\d+)$/gm)].map((m) => `${m[1]} x${m[2]}`);
  const errorKinds = kinds.filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}${k === 'non-2xx' && statuses.length ? ` (${statuses.join(', ')})` : ''}`).join(', ');
  return { rps, p50, p99, requests, errors: non2xx + socketErrors, errorKinds };
}

/**
 * Counts the answers that are not 2xx/3xx by status, printed by wrk as `status 429: 5` after its
 * report. It costs wrk a Lua call per answer, so only runs that assert zero errors use it.
 */
const STATUS_COUNTER = [
  'local threads = {}',
  'function setup(thread) table.insert(threads, thread) end',
  'codes = {}',
  'function response(status, headers, body) if status >= 400 or status < 200 then codes[status] = (codes[status] or 0) + 1 end end',
  'function done(summary, latency, requests)',
  '  for _, t in ipairs(threads) do for status, n in pairs(t:get("codes")) do io.write(string.format("status %d: %d\\n", status, n)) end end',
  'end',
];

/**
 * Runs wrk against one request for `seconds`; the body is read from a file by a Lua script, so
 * binary bodies go through unchanged.
 */
export async function wrk(request: LoadRequest, connections: number, seconds: number, workDir: string, name: string, options: { statuses?: boolean } = {}): Promise<LoadResult> {
  const bodyFile = join(workDir, `${name}.body`);
  const script = join(workDir, `${name}.lua`);
  writeFileSync(bodyFile, request.body);
  const headers = Object.entries(request.headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`).join('\n');
  writeFileSync(script, [
    'wrk.method = "POST"',
    `local f = assert(io.open(${JSON.stringify(bodyFile)}, "rb"))`,
    'wrk.body = f:read("*all")',
    'f:close()',
    headers,
    ...(options.statuses ? STATUS_COUNTER : []),
  ].join('\n'));
  const out = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '--latency', '-s', script, request.url]);
  return parseWrk(out);
}
