import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, memoryLogger, openDeclared, openFunctionDir, postJson } from '../testing/index.ts';

/** What no answer to a client may carry: machine paths, stack frames, parsers' and onnxruntime's own words. */
const INTERNALS = [
  ROOT,
  '/usr/',
  'node_modules',
  '    at ',
  'Error:',
  'SyntaxError',
  'Unexpected token',
  'in JSON at position',
  'onnxruntime',
  'Non-zero status code',
  'Status Message',
  '.cc:',
];

function assertClean(what: string, status: number, text: string): void {
  expect(status, what).toBeGreaterThanOrEqual(400);
  for (const bad of INTERNALS) expect(text, `${what}: ${text}`).not.toContain(bad);
  expect(() => JSON.parse(text), what).not.toThrow();
}

describe('nothing internal in a public answer', () => {
  it('keeps every error path of the protocol, /predict and a custom route free of internals', async () => {
    const logger = memoryLogger();
    const iris = await openFunctionDir(`${ROOT}/functions/iris`, {}, logger);
    const vad = await openFunctionDir(`${ROOT}/functions/vad`, {}, logger);
    const infer = (body: unknown) => postJson(body);
    const cases: [string, Response | Promise<Response>][] = [
      ['malformed JSON, /infer', iris.app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"inputs": [' })],
      ['malformed JSON, /predict', iris.app.request('/predict', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"instances": [1,}' })],
      ['malformed JSON, a custom route', iris.app.request('/species', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{nope' })],
      ['wrong content type', iris.app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' })],
      ['unknown model', iris.app.request('/v2/models/nope/infer', infer({}))],
      ['unknown version', iris.app.request('/v2/models/iris/versions/7/infer', infer({}))],
      ['wrong shape', iris.app.request('/v2/models/iris/infer', infer({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 5], data: [1, 2, 3, 4, 5] }] }))],
      ['wrong datatype', iris.app.request('/v2/models/iris/infer', infer({ inputs: [{ name: 'input', datatype: 'INT32', shape: [1, 4], data: [1, 2, 3, 4] }] }))],
      ['broken gzip', iris.app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: Buffer.from('not gzip at all') })],
      ['unknown coding', iris.app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'br' }, body: gzipSync('{}') })],
      ['body too large', iris.app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'x'.repeat(11 * 1024 * 1024) })],
      ['unknown route', iris.app.request('/nothing')],
      ['wrong method', iris.app.request('/predict')],
      // The model's own kernel fails on an empty input: the answer says so in our words, not onnxruntime's.
      ['a kernel failure', vad.app.request('/v2/models/vad/infer', infer({ inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 0], data: [] },
        { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
        { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
      ] }))],
      ['not a WAV', vad.app.request('/segments', { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: 'RIFFnonsense' })],
    ];
    for (const [what, pending] of cases) {
      const res = await pending;
      assertClean(what, res.status, await res.text());
    }
  });

  it('answers a failure of the server with a request id that finds the details in the log', async () => {
    const logger = memoryLogger();
    const { app } = await openDeclared(`${ROOT}/functions/iris`, {
      routes(a) {
        a.get('/boom', () => {
          throw new Error(`secret internals at ${ROOT}/somewhere.ts`);
        });
      },
    }, {}, logger);
    const res = await app.request('/boom', { headers: { 'X-Request-Id': 'req-42' } });
    const text = await res.text();
    assertClean('an unexpected exception', res.status, text);
    expect(res.status).toBe(500);
    expect(JSON.parse(text)).toEqual({ error: 'internal server error', request_id: 'req-42' });
    expect(logger.lines.some((l) => l.request_id === 'req-42' && String(l.error).includes('secret internals'))).toBe(true);
  });

  it('keeps a dead inference thread\'s reason out of the answer', async () => {
    const logger = memoryLogger();
    const { app, model } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx' }, { MODELFN_INFERENCE_THREAD: 'true' }, logger);
    const run = (iterations: number) => app.request('/v2/models/slow/infer', postJson({ inputs: [
      { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
      { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
    ] }));
    const running = run(200_000);
    const waiting = run(1);
    await model.thread!.end();
    for (const res of await Promise.all([running, waiting])) {
      const text = await res.text();
      assertClean('a dead thread', res.status, text);
      expect(res.status).toBeLessThan(600);
    }
  });
});
