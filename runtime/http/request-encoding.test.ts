import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import { Hono } from 'hono';
import { beforeAll, describe, expect, it } from 'vitest';
import { errorResponse, handleError } from './errors.ts';
import { decodeRequestBody } from './request-encoding.ts';
import { compressionBomb, errorOf, openFunctionDir, postJson } from '../testing/index.ts';

/** An app that echoes the body it reads, and the headers it sees, behind the middleware. */
function echoApp(maxSize: number): Hono {
  const app = new Hono();
  app.onError(handleError(() => {}));
  app.use(decodeRequestBody({ maxSize, onTooLarge: (c) => errorResponse(c, 413, 'too large once decoded') }));
  app.post('/echo', async (c) => c.json({
    text: await c.req.text(),
    encoding: c.req.header('content-encoding') ?? null,
    length: c.req.header('content-length') ?? null,
  }));
  return app;
}

const send = (app: Hono, body: Uint8Array | string, encoding?: string) =>
  app.request('/echo', { method: 'POST', headers: encoding === undefined ? {} : { 'Content-Encoding': encoding }, body: body as BodyInit });

describe('decodeRequestBody', () => {
  const text = JSON.stringify({ hello: 'world', n: [1, 2, 3] }).repeat(20);
  const app = echoApp(1 << 20);

  it('decodes gzip, x-gzip, deflate (zlib and bare), identity and stacked codings before the route reads', async () => {
    const cases: [Uint8Array | string, string][] = [
      [gzipSync(text), 'gzip'], [gzipSync(text), 'x-gzip'], [gzipSync(text), 'GZIP'], [deflateSync(text), 'deflate'],
      [deflateRawSync(text), 'deflate'], [text, 'identity'], [gzipSync(deflateSync(text)), 'deflate, gzip'], [gzipSync(text), 'identity, gzip'],
    ];
    for (const [body, encoding] of cases) {
      const res = await send(app, body, encoding);
      const seen = (await res.json()) as { text: string; encoding: string | null; length: string | null };
      expect(seen.text, encoding).toBe(text);
      if (encoding !== 'identity') expect(seen).toEqual({ text, encoding: null, length: String(Buffer.byteLength(text)) });
    }
  });

  it('leaves bodies without Content-Encoding alone', async () => {
    expect(((await (await send(app, text)).json()) as { text: string }).text).toBe(text);
  });

  it('answers 415 naming an unknown coding, with the supported ones in Accept-Encoding', async () => {
    for (const encoding of ['br', 'gzip, zstd', 'compress']) {
      const res = await send(app, text, encoding);
      expect(res.headers.get('accept-encoding')).toBe('gzip, deflate, identity');
      const err = await errorOf(res);
      expect(err.status).toBe(415);
      expect(err.error).toMatch(/^unsupported Content-Encoding '(br|zstd|compress)'; send the body as gzip, deflate or identity$/);
    }
  });

  it('answers 400 for data that is not what its Content-Encoding says', async () => {
    for (const [body, encoding, pattern] of [[text, 'gzip', /not valid gzip data/], [gzipSync(text).subarray(0, 30), 'gzip', /not valid gzip data/], [Buffer.from('\x78\x9c\xff\xff'), 'deflate', /not valid deflate data/]] as const) {
      const err = await errorOf(await send(app, body, encoding));
      expect(err.status).toBe(400);
      expect(err.error).toMatch(pattern);
    }
  });

  it('holds the decoded size to the limit: up to the limit passes, one byte more is 413', async () => {
    const small = echoApp(1000);
    expect((await send(small, gzipSync('x'.repeat(1000)), 'gzip')).status).toBe(200);
    expect(await errorOf(await send(small, gzipSync('x'.repeat(1001)), 'gzip'))).toEqual({ status: 413, error: 'too large once decoded' });
    expect((await errorOf(await send(small, deflateSync('x'.repeat(5000)), 'deflate'))).status).toBe(413);
  });

  it('stops inflating a bomb at the limit: 1 MB of gzip that would be 1 GiB costs no more than the limit', async () => {
    const bomb = compressionBomb();
    const before = process.resourceUsage().maxRSS;
    const res = await send(echoApp(10 * 1024 * 1024), bomb, 'gzip');
    expect(await errorOf(res)).toEqual({ status: 413, error: 'too large once decoded' });
    // maxRSS is in KiB; inflating the whole GiB would have raised it by a GiB.
    expect(process.resourceUsage().maxRSS - before).toBeLessThan(256 * 1024);
  });
});

describe('compressed bodies on every route of a function', () => {
  let app: Hono;
  beforeAll(async () => {
    ({ app } = await openFunctionDir('functions/iris'));
  });
  const gzipJson = (body: unknown) => ({ method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: gzipSync(JSON.stringify(body)) });

  it("reaches the function's own route, /predict and the protocol route decoded", async () => {
    const species = await app.request('/species', gzipJson({ flowers: [[6.7, 3.0, 5.2, 2.3]] }));
    expect(((await species.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const predict = await app.request('/predict', gzipJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
    expect(await predict.json()).toEqual(await (await app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).json());
  });

  it("answers 413 naming the function's limit for a bomb, on its own route too", async () => {
    for (const path of ['/species', '/predict', '/v2/models/iris/infer']) {
      const res = await app.request(path, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: compressionBomb() as BodyInit });
      expect(await errorOf(res)).toEqual({ status: 413, error: "request body is larger than the limit of 10485760 bytes for 'iris' once decompressed" });
    }
  });
});
