/**
 * Test helpers: a function loaded in process, and requests in the protocol's forms.
 */
import { request as httpRequest } from 'node:http';
import { resolve } from 'node:path';
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import { readConfig, type RuntimeConfig } from '../core/config.ts';
import type { FunctionDeclaration } from '../function/define.ts';
import { loadFunctionDir, resolveFunction } from '../function/discover.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { prepareFunction, type PreparedFunction } from '../serve/server.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
export const FIXTURES = resolve(import.meta.dirname, 'fixtures');

/** A logger that keeps its lines for assertions. */
export function memoryLogger(level: RuntimeConfig['logLevel'] = 'info'): Logger & { lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return Object.assign(createLogger(level, (line) => lines.push(JSON.parse(line))), { lines });
}

export function testConfig(env: Record<string, string> = {}): RuntimeConfig {
  // Shedding off unless a test asks for it (runtime/serve/shed.test.ts tests it): on a busy test
  // machine a loop turn can run past 100 ms with nothing wrong in the code under test, and the
  // POSTs it reads would get 429 (seen in the reload-under-load test with the cores taken).
  return readConfig({ MODELFN_ACCESS_LOG: 'false', MODELFN_SHED_LAG_MS: '0', ...env });
}

/** Loads a function folder in process, as `npm run serve` would. */
export async function openFunctionDir(dir: string, env: Record<string, string> = {}, logger: Logger = memoryLogger()): Promise<PreparedFunction> {
  const config = testConfig(env);
  return prepareFunction(await loadFunctionDir(resolve(ROOT, dir), config), config, logger);
}

/** Loads a declaration given in the test, for a model in a folder. */
export async function openDeclared(dir: string, declaration: FunctionDeclaration, env: Record<string, string> = {}, logger: Logger = memoryLogger()): Promise<PreparedFunction> {
  const config = testConfig(env);
  return prepareFunction(await resolveFunction(dir, declaration, undefined, config), config, logger);
}

export function postJson(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) };
}

/** A binary-extension request: the JSON header followed by the given tensors' bytes. */
export function binaryRequest(header: unknown, tensors: Uint8Array[], headerLength?: string): RequestInit {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = Buffer.concat([json, ...tensors]);
  return {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': headerLength ?? String(json.length) },
    body,
  };
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Splits a binary-extension response into its JSON header and binary part. */
export async function readBinaryResponse(res: Response): Promise<{ header: any; binary: Buffer }> {
  const length = Number(res.headers.get('inference-header-content-length'));
  const body = Buffer.from(await res.arrayBuffer());
  return { header: JSON.parse(body.subarray(0, length).toString('utf8')), binary: body.subarray(length) };
}

/** Asserts the shape of every error: JSON with a string `error`. */
export async function errorOf(res: Response): Promise<{ status: number; error: string }> {
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`expected a JSON error body, got ${res.status}: ${text.slice(0, 200)}`);
  }
  if (typeof (body as { error?: unknown }).error !== 'string') throw new Error(`expected {"error": string}, got ${text.slice(0, 200)}`);
  if (res.headers.get('content-type')?.includes('application/json') !== true) throw new Error(`error without a JSON content type: ${res.headers.get('content-type')}`);
  return { status: res.status, error: (body as { error: string }).error };
}

/**
 * A response body as sent before compression: in process (app.request) the body still carries
 * its Content-Encoding; fetch over HTTP has already decoded it and left the header.
 */
export async function decodedBody(res: Response): Promise<Buffer> {
  const body = Buffer.from(await res.arrayBuffer());
  const encoding = res.headers.get('content-encoding');
  if (encoding === 'gzip' && body[0] === 0x1f && body[1] === 0x8b) return gunzipSync(body);
  if (encoding === 'deflate' && body.length >= 2 && (body[0] & 0x0f) === 8 && ((body[0] << 8) | body[1]) % 31 === 0) return inflateSync(body);
  return body;
}

let bomb: Buffer | undefined;
/** About 1 MB of gzip that inflates to 1 GiB of zeros (16 gzip members of 64 MiB each). */
export function compressionBomb(): Buffer {
  bomb ??= Buffer.concat(new Array(16).fill(gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 })));
  return bomb;
}

/** A GET on a fresh connection (no pooled keep-alive), resolving to its status, or its error code on failure. */
export function freshConnection(url: string, path = '/v2/health/live'): Promise<number | string> {
  return new Promise((done) => {
    const req = httpRequest(`${url}${path}`, { agent: false }, (res) => {
      res.resume();
      done(res.statusCode!);
    });
    req.on('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'error'));
    req.end();
  });
}

/**
 * One sample of the app's Prometheus metrics, as its `/metrics` shows it (0 when absent): what a
 * test waits on instead of the clock, e.g. a model run counted once it has ended.
 *
 * @example await metricSample(app, 'modelfn_inference_duration_seconds_count{model="slow"}')
 */
export async function metricSample(app: { request(path: string): Response | Promise<Response> }, sample: string): Promise<number> {
  const text = await (await app.request('/metrics')).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/**
 * Resolves true once `check` does, asking again every few milliseconds; false after `ms` (a bound
 * for a broken build, far beyond what any machine needs, never a measure of speed).
 *
 * @example expect(await until(async () => (await app.request('/v2/health/ready')).status === 200)).toBe(true);
 */
export async function until(check: () => Promise<boolean> | boolean, ms = 60_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return false;
}
