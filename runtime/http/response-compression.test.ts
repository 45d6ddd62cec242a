import { randomBytes } from 'node:crypto';
import { get as httpGet, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { gunzipSync, inflateSync } from 'node:zlib';
import { Hono } from 'hono';
import { beforeAll, describe, expect, it } from 'vitest';
import { compressResponse, jsonAnswer } from './response-compression.ts';
import { openFunctionDir, postJson } from '../testing/index.ts';

const big = JSON.stringify({ values: Array.from({ length: 1000 }, (_, i) => i % 7) });
const random = new Uint8Array(randomBytes(4096));

function app(): Hono {
  const a = new Hono();
  a.use(compressResponse());
  a.get('/json', (c) => c.body(big, 200, { 'Content-Type': 'application/json' }));
  a.get('/small', (c) => c.json({ ok: true }));
  a.get('/binary', (c) => c.body(new TextEncoder().encode(big), 200, { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': '7' }));
  a.get('/random', (c) => c.body(random, 200, { 'Content-Type': 'application/octet-stream' }));
  a.get('/image', (c) => c.body(new TextEncoder().encode(big), 200, { 'Content-Type': 'image/png' }));
  a.get('/vary', (c) => c.body(big, 200, { 'Content-Type': 'application/json', Vary: 'Accept' }));
  a.get('/no-transform', (c) => c.body(big, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-transform' }));
  return a;
}

const get = (path: string, acceptEncoding?: string) => app().request(path, { headers: acceptEncoding ? { 'Accept-Encoding': acceptEncoding } : {} });
const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());

describe('compressResponse', () => {
  it('compresses JSON and binary answers with the coding the client prefers', async () => {
    for (const [accept, encoding, decode] of [['gzip', 'gzip', gunzipSync], ['deflate', 'deflate', inflateSync], ['deflate;q=0.5, gzip;q=0.9', 'gzip', gunzipSync], ['br, deflate', 'deflate', inflateSync]] as const) {
      for (const path of ['/json', '/binary']) {
        const res = await get(path, accept);
        expect(res.headers.get('content-encoding'), `${path} ${accept}`).toBe(encoding);
        expect(res.headers.get('vary')).toBe('Accept-Encoding');
        const body = await bytes(res);
        expect(Number(res.headers.get('content-length') ?? body.length)).toBeLessThan(big.length);
        expect(decode(body).toString()).toBe(big);
      }
    }
    expect((await get('/binary', 'gzip')).headers.get('inference-header-content-length')).toBe('7');
  });

  it('sends plain what is small, does not shrink, is not compressible, or was not asked for', async () => {
    const plain: [string, string | undefined][] = [
      ['/small', 'gzip'], ['/random', 'gzip'], ['/image', 'gzip'], ['/json', undefined], ['/json', 'gzip;q=0'], ['/json', 'identity'], ['/json', 'br'], ['/no-transform', 'gzip'],
    ];
    for (const [path, accept] of plain) {
      const res = await get(path, accept);
      expect(res.headers.get('content-encoding'), `${path} ${accept}`).toBeNull();
      expect(res.status).toBe(200);
    }
    expect(await bytes(await get('/random', 'gzip'))).toEqual(Buffer.from(random));
    expect(await (await get('/small', 'gzip')).json()).toEqual({ ok: true });
  });

  it('leaves an answer under the threshold exactly as without Accept-Encoding, and compresses a large one once', async () => {
    const seen: Response[] = [];
    const a = new Hono();
    a.use(async (c, next) => { await next(); seen.push(c.res); });
    a.use(compressResponse());
    const built: Response[] = [];
    const keep = (res: Response) => (built.push(res), res);
    a.get('/small', (c) => keep(jsonAnswer(c, JSON.stringify({ ok: true }))));
    a.get('/large', (c) => keep(jsonAnswer(c, big)));
    for (const accept of [undefined, 'gzip, deflate']) {
      const res = await a.request('/small', { headers: accept ? { 'Accept-Encoding': accept, Accept: '*/*' } : {} });
      // The very answer the route built: not read back, not rebuilt.
      expect(seen.at(-1), String(accept)).toBe(built.at(-1));
      expect([...res.headers]).toEqual([['content-type', 'application/json']]);
      expect(await res.text()).toBe('{"ok":true}');
    }
    const plain = await a.request('/large');
    expect(plain.headers.get('content-encoding')).toBeNull();
    expect(await plain.text()).toBe(big);
    const res = await a.request('/large', { headers: { 'Accept-Encoding': 'gzip, deflate' } });
    expect(seen.at(-1)).not.toBe(built.at(-1));
    expect(res.headers.get('content-encoding')).toBe('gzip');
    expect(res.headers.get('vary')).toBe('Accept-Encoding');
    expect(res.headers.get('content-length')).toBeNull();
    expect(gunzipSync(await bytes(res)).toString()).toBe(big);
  });

  it('sends over HTTP a small answer with its length, and streams a large one compressed once', async () => {
    const large = JSON.stringify({ values: Array.from({ length: 60_000 }, (_, i) => (i * 7919) % 1000) });
    const a = new Hono();
    a.use(compressResponse());
    a.get('/small', (c) => jsonAnswer(c, JSON.stringify({ ok: true })));
    a.get('/large', (c) => jsonAnswer(c, large));
    const server = serve({ fetch: a.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as AddressInfo;
    const raw = (path: string, acceptEncoding: string) => new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      httpGet({ host: '127.0.0.1', port, path, headers: { 'Accept-Encoding': acceptEncoding } }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (d: Buffer) => parts.push(d));
        res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(parts) }));
      }).on('error', reject);
    });
    try {
      const small = await raw('/small', 'gzip, deflate');
      expect(small.headers['content-length']).toBe('11');
      expect(small.headers['content-encoding']).toBeUndefined();
      expect(small.body.toString()).toBe('{"ok":true}');
      for (const [encoding, decode] of [['gzip', gunzipSync], ['deflate', inflateSync]] as const) {
        const res = await raw('/large', encoding);
        expect(res.headers['content-encoding']).toBe(encoding);
        // Sent as zlib produced it: chunked, with no length known before the last byte.
        expect(res.headers['transfer-encoding']).toBe('chunked');
        expect(res.headers['content-length']).toBeUndefined();
        expect(res.headers.vary).toBe('Accept-Encoding');
        expect(res.body.length).toBeLessThan(large.length / 2);
        expect(decode(res.body).toString()).toBe(large);
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('keeps answering when clients leave in the middle of a streamed answer', async () => {
    const large = JSON.stringify({ values: Array.from({ length: 400_000 }, (_, i) => (i * 7919) % 100_003) });
    const a = new Hono();
    a.use(compressResponse());
    a.get('/large', (c) => jsonAnswer(c, large));
    const server = serve({ fetch: a.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as AddressInfo;
    try {
      for (let i = 0; i < 3; i++) {
        // Leave after the first compressed chunk.
        await new Promise<void>((resolve) => {
          const req = httpGet({ host: '127.0.0.1', port, path: '/large', headers: { 'Accept-Encoding': 'gzip' } }, (res) => {
            res.once('data', () => {
              req.destroy();
              resolve();
            });
          });
          req.on('error', () => {});
        });
      }
      const res = await fetch(`http://127.0.0.1:${port}/large`, { headers: { 'Accept-Encoding': 'gzip' } });
      expect(res.headers.get('content-encoding')).toBe('gzip');
      expect(await res.text()).toBe(large);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('adds Accept-Encoding to an existing Vary', async () => {
    expect((await get('/vary', 'gzip')).headers.get('vary')).toBe('Accept, Accept-Encoding');
  });
});

describe('compressed answers from a function', () => {
  let fn: Hono;
  beforeAll(async () => {
    ({ app: fn } = await openFunctionDir('functions/iris'));
  });

  it('compresses a large inference answer and its docs page, and leaves a one-row answer plain', async () => {
    const rows = { inputs: [{ name: 'input', datatype: 'FP32', shape: [50, 4], data: new Array(200).fill(1) }] };
    const res = await fn.request('/v2/models/iris/infer', postJson(rows, { 'Accept-Encoding': 'gzip' }));
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const plain = await (await fn.request('/v2/models/iris/infer', postJson(rows))).text();
    expect(gunzipSync(await bytes(res)).toString()).toBe(plain);
    const one = await fn.request('/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] }, { 'Accept-Encoding': 'gzip' }));
    expect(one.headers.get('content-encoding')).toBeNull();
    const docs = await fn.request('/docs', { headers: { 'Accept-Encoding': 'gzip, deflate' } });
    expect(docs.headers.get('content-encoding')).toBe('gzip');
    expect(gunzipSync(await bytes(docs)).toString()).toMatch(/<html/i);
  });
});
