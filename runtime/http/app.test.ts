import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, errorOf, memoryLogger, openDeclared, openFunctionDir, postJson } from '../testing/index.ts';

const IRIS = resolve(ROOT, 'functions/iris');
const setosa = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

describe('function app', () => {
  it('classifies with the function labels', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const res = await app.request('/v2/models/iris/infer', postJson({ ...setosa, outputs: [{ name: 'probabilities', parameters: { classification: 2 } }] }));
    const out = ((await res.json()) as { outputs: { datatype: string; shape: number[]; data: string[] }[] }).outputs[0];
    expect(out.datatype).toBe('BYTES');
    expect(out.shape).toEqual([1, 2]);
    expect(out.data[0]).toMatch(/^0\.9\d+:0:setosa$/);
    expect(out.data[1]).toMatch(/:1:versicolor$/);
  });

  it('serves /predict with instances and predictions', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const res = await app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }));
    expect(res.status).toBe(200);
    const { predictions } = (await res.json()) as { predictions: { label: number; probabilities: number[] }[] };
    expect(predictions.map((p) => p.label)).toEqual([0, 2]);
    expect(predictions[0].probabilities).toHaveLength(3);
    const bad = await errorOf(await app.request('/predict', postJson({ instances: [[1, 2, 3]] })));
    expect(bad).toEqual({ status: 400, error: expect.stringMatching(/\[1,3\].*\[-1,4\]/) });
    expect((await errorOf(await app.request('/predict', postJson({ rows: [] })))).error).toMatch(/instances/);
    expect((await errorOf(await app.request('/predict', postJson({ instances: [['a', 1, 2, 3]] })))).error).toMatch(/element 0 is "a"/);
  });

  it('reports the shape of the batch as sent, however deep', async () => {
    const { app } = await openFunctionDir('functions/iris');
    for (const [instances, shape] of [[[[[5.1, 3.5, 1.4, 0.2]]], '[1,1,4]'], [[5.1, 3.5, 1.4, 0.2], '[4]'], [[[[[1, 2]]], [[[3, 4]]]], '[2,1,1,2]']] as const) {
      expect(await errorOf(await app.request('/predict', postJson({ instances })))).toEqual({
        status: 400,
        error: `instances (input 'input'): the batch has shape ${shape}, the model expects [-1,4] (-1 = any size); each instance is one row of shape [4]`,
      });
    }
  });

  it('says how deep a batch nested past any model is, in the client\'s terms', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const deep = `${'['.repeat(5000)}1${']'.repeat(5000)}`;
    const res = await app.request('/predict', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: `{"instances": ${deep}}` });
    const { status, error } = await errorOf(res);
    expect(status).toBe(400);
    expect(error).toMatch(/^instances \(input 'input'\): the batch is nested 5000 arrays deep \(shape \[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,\.\.\.\]\), the model expects \[-1,4\] \(-1 = any size\); each instance is one row of shape \[4\]$/);
  });

  it('says what flat or nested data was sent and what its shape needs', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const infer = (shape: number[], data: unknown) => app.request('/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape, data }] }));
    expect(await errorOf(await infer([1, 4], [5.1, 3.5]))).toEqual({
      status: 400,
      error: "input 'input': 'data' holds 2 values, shape [1,4] has 4 elements; send 4 values flat, or arrays nested to the shape",
    });
    expect((await errorOf(await infer([2, 4], [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0]]))).error).toBe(
      "input 'input': data[1] holds 2 values, not 4, as shape [2,4] says; send 8 values flat, or arrays nested to the shape",
    );
    expect((await errorOf(await infer([1, 4], [[[5.1], 3.5, 1.4, 0.2]]))).error).toMatch(/^input 'input': data\[0\]\[0\] is an array where a value belongs/);
    // Nested 5 000 deep: the depth is what is wrong, said as such.
    const deep = `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": ${'['.repeat(5000)}1${']'.repeat(5000)}}]}`;
    const nested = await errorOf(await app.request('/v2/models/iris/infer', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: deep }));
    expect(nested).toEqual({ status: 400, error: "input 'input': data[0][0] is an array where a value belongs: the data is nested deeper than the shape's 2 dimensions, as shape [1,4] says; send 4 values flat, or arrays nested to the shape" });
  });

  it('refuses a float its type cannot hold (1e999 is Infinity once parsed), naming the input, on every route', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const post = (path: string, body: string) => app.request(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
    for (const big of ['1e999', '-1e999', '1e39']) {
      const infer = await errorOf(await post('/v2/models/iris/infer', `{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [5.1, ${big}, 1.4, 0.2]}]}`));
      expect(infer.status).toBe(400);
      expect(infer.error).toMatch(/^input 'input': element 1 is .*, beyond FP32's range of ±3.4028235e38; send finite values within it$/);
      const predict = await errorOf(await post('/predict', `{"instances": [[5.1, 3.5, ${big}, 0.2]]}`));
      expect(predict.status).toBe(400);
      expect(predict.error).toMatch(/^instances \(input 'input'\): element 2 is /);
    }
    expect((await errorOf(await post('/predict', '{"instances": [[5.1, 3.5, 1e999, 0.2]]}'))).error).toContain('element 2 is a number too large for JSON to carry (such as 1e999)');
    // The largest float32 itself is fine.
    expect((await post('/predict', '{"instances": [[3.4028234663852886e38, 3.5, 1.4, 0.2]]}')).status).toBe(200);
  });

  it('prints float32 answers as the shortest decimal of the value, in /predict, iris /species and infer alike', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const row = [6.7, 3.0, 5.2, 2.3];
    const predict = (await (await app.request('/predict', postJson({ instances: [row] }))).json()) as { predictions: { probabilities: number[] }[] };
    const species = (await (await app.request('/species', postJson({ flowers: [row] }))).json()) as { predictions: { probabilities: Record<string, number> }[] };
    const [p] = predict.predictions;
    expect(Object.values(species.predictions[0].probabilities)).toEqual(p.probabilities);
    for (const v of p.probabilities) {
      // No float64 digits: at most 9 significant digits, the most a float32 needs.
      expect(String(v).replace(/^0\.0*|e.*$|\./g, '').length).toBeLessThanOrEqual(9);
    }
    const infer = (await (await app.request('/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: row }] }))).json()) as { outputs: { name: string; data: number[] }[] };
    // One rule for FP32 on every route: the protocol's data prints the same decimals as /predict.
    expect(infer.outputs.find((o) => o.name === 'probabilities')!.data).toEqual(p.probabilities);
  });

  it('answers at its root, with or without a trailing slash', async () => {
    const { app } = await openFunctionDir('functions/iris');
    expect(await (await app.request('/')).json()).toEqual({ name: 'iris', prefix: '/iris', model: '/v2/models/iris', predict: '/iris/predict', routes: ['POST /iris/species'], docs: '/iris/docs', replicas: 1, state: 'ready' });
    const browser = await app.request('/', { headers: { Accept: 'text/html' } });
    expect([browser.status, browser.headers.get('location')]).toEqual([302, '/docs']);
    expect((await app.request('/species/', postJson({ flowers: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
  });

  it('refuses /predict for a model with several inputs, pointing at the protocol route', async () => {
    const { app } = await openFunctionDir('functions/vad');
    const err = await errorOf(await app.request('/predict', postJson({ instances: [[0]] })));
    expect(err.status).toBe(400);
    expect(err.error).toContain('/v2/models/vad/infer');
  });

  it('answers 413 JSON beyond the declared body limit', async () => {
    const { app } = await openDeclared(IRIS, { limits: { bodySize: 200 } });
    const big = { inputs: [{ name: 'input', datatype: 'FP32', shape: [100, 4], data: new Array(400).fill(1) }] };
    const err = await errorOf(await app.request('/v2/models/iris/infer', postJson(big)));
    expect(err.status).toBe(413);
    expect(err.error).toContain('200 bytes');
  });

  it('answers 504 JSON when a request outlives the declared timeout', async () => {
    const { app } = await openDeclared(IRIS, {
      limits: { timeoutMs: 50 },
      routes(a) {
        a.get('/slow', async (c) => {
          await new Promise((r) => setTimeout(r, 500));
          return c.json({ done: true });
        });
      },
    });
    const err = await errorOf(await app.request('/slow'));
    expect(err.status).toBe(504);
    expect(err.error).toContain('50 ms');
  });

  it('never leaks a stack trace: unexpected errors are a generic 500, logged with the stack', async () => {
    const logger = memoryLogger();
    const { app } = await openDeclared(IRIS, {
      routes(a) {
        a.get('/boom', () => {
          throw new Error('secret internals');
        });
      },
    }, {}, logger);
    const res = await app.request('/boom');
    const text = await res.clone().text();
    expect(await errorOf(res)).toEqual({ status: 500, error: 'internal server error' });
    expect(text).not.toContain('secret');
    expect(logger.lines.some((l) => l.level === 'error' && String(l.error).includes('secret internals'))).toBe(true);
  });

  it('maps malformed JSON in a custom route to 400', async () => {
    const { app } = await openFunctionDir('functions/iris');
    const err = await errorOf(await app.request('/species', postJson('{"flowers": [')));
    expect(err.status).toBe(400);
    expect(err.error).toMatch(/^the request body is not valid JSON( \(at character \d+\))?$/);
  });

  it('refuses a shape over the element limit before allocating its tensor', async () => {
    // What shows that the check comes first is the answer itself, not the process's memory (an
    // allocation too large to make throws before memory grows; one it can make is garbage at
    // once): without the check, 1e12 rows would be a 500 (no such typed array), and 10 million
    // rows a 400 about the data, after allocating 160 MB.
    const { app } = await openFunctionDir('functions/iris');
    const infer = (shape: number[]) => app.request('/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape, data: [] }] }));
    expect(await errorOf(await infer([1e12, 4]))).toEqual({ status: 400, error: "input 'input': shape [1000000000000,4] has 4000000000000 elements, more than the limit of 16777216" });
    expect(await errorOf(await infer([10_000_000, 4]))).toEqual({ status: 400, error: "input 'input': shape [10000000,4] has 40000000 elements, more than the limit of 16777216" });
  });

  it('keeps an incoming X-Request-Id and logs one JSON line per request', async () => {
    const logger = memoryLogger();
    const { app } = await openFunctionDir('functions/iris', { MODELFN_ACCESS_LOG: 'true' }, logger);
    const res = await app.request('/v2/models/iris/infer', postJson(setosa, { 'X-Request-Id': 'trace-123' }));
    expect(res.headers.get('x-request-id')).toBe('trace-123');
    const line = logger.lines.find((l) => l.msg === 'request');
    expect(line).toMatchObject({ fn: 'iris', request_id: 'trace-123', method: 'POST', path: '/v2/models/iris/infer', status: 200 });
    expect(typeof line!.duration_ms).toBe('number');
    const generated = await app.request('/v2/health/live');
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('counts requests by route and status, and observes inference latency', async () => {
    const { app } = await openFunctionDir('functions/iris');
    await app.request('/v2/models/iris/infer', postJson(setosa));
    await app.request('/v2/models/iris/infer', postJson({}));
    const text = await (await app.request('/metrics')).text();
    const sample = (name: string, labels: string[]) =>
      text.split('\n').find((l) => l.startsWith(`${name}{`) && labels.every((x) => l.includes(x)))?.split(' ').pop();
    expect(sample('modelfn_http_requests_total', ['status="200"', 'route="/v2/models/iris/infer"', 'method="POST"'])).toBe('1');
    expect(sample('modelfn_http_requests_total', ['status="400"', 'route="/v2/models/iris/infer"'])).toBe('1');
    expect(text).toMatch(/modelfn_inference_duration_seconds_count\{model="iris"\} 1/);
    expect(text).toMatch(/modelfn_model_load_seconds\{model="iris"\} [\d.e-]+/);
    expect(text).toMatch(/modelfn_http_request_duration_seconds_bucket/);
  });

  it('answers 503 JSON while not ready, and reports readiness', async () => {
    const { app, host } = await openFunctionDir('functions/iris');
    host.state = 'draining';
    const ready = await app.request('/v2/health/ready');
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { error: string }).error).toContain('shutting down');
    host.setFailed('corrupt file');
    const err = await errorOf(await app.request('/v2/models/iris/infer', postJson(setosa)));
    expect(err).toEqual({ status: 503, error: "model 'iris' failed to load: corrupt file" });
    expect((await app.request('/v2/models/iris/ready')).status).toBe(503);
  });
});
