// A function whose inference thread dies: not ready (503 JSON naming why, readiness red), a
// request caught in flight is a 503 too (never a 400), and the thread is restarted.
import { describe, expect, it } from 'vitest';
import ort from 'onnxruntime-node';
import { FIXTURES, errorOf, openDeclared, openFunctionDir, postJson } from '../testing/index.ts';
import { until } from '../testing/helpers.ts';

// On its thread for good: with the default (auto), a small model moves to the main thread.
const ON_THREAD = { MODELFN_INFERENCE_THREAD: 'true' };
const iris = postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] });

describe('a dead inference thread', () => {
  it('makes the function not ready with the reason, then serves again once a new thread runs', async () => {
    const { app, model } = await openFunctionDir('functions/iris', ON_THREAD);
    expect((await app.request('/predict', iris)).status).toBe(200);
    await model.thread!.end();

    const ready = await app.request('/v2/health/ready');
    expect(ready.status).toBe(503);
    expect((await ready.json()) as unknown).toEqual({ ready: false, error: "model 'iris' is unavailable: its inference thread exited (code 1); restarting it" });
    const modelReady = await errorOf(await app.request('/v2/models/iris/ready'));
    expect(modelReady).toEqual({ status: 503, error: "model 'iris' is unavailable: its inference thread exited (code 1); restarting it" });
    const predict = await errorOf(await app.request('/predict', iris));
    expect(predict.status).toBe(503);
    expect(predict.error).toMatch(/inference thread exited/);
    // Liveness stays green: the process answers, and the orchestrator need not kill it.
    expect((await app.request('/v2/health/live')).status).toBe(200);

    expect(await until(async () => (await app.request('/v2/health/ready')).status === 200)).toBe(true);
    const again = await app.request('/predict', iris);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ predictions: [{ label: 0, probabilities: expect.any(Array) }] });
    await model.release();
  });

  it('answers a request the death caught waiting with 503 JSON, not a 400 blaming the input', async () => {
    const { app, model } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx' }, ON_THREAD);
    const request = (iterations: number) => app.request('/v2/models/slow/infer', postJson({
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
        { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
      ],
    }));
    // The thread takes its messages in order: a run handed to it, then the end, then a request
    // that arrives while the run is still going. The run is answered, the thread ends after it,
    // and the request left waiting is caught. No clock: model.run hands its job over at once,
    // and the run (100 000 rounds) lasts far longer than a request's parsing.
    const running = model.run({
      x: new ort.Tensor('float32', new Float32Array(256).fill(0.1), [1, 256]),
      iterations: new ort.Tensor('int64', BigInt64Array.from([100_000n]), [1]),
    });
    const ended = model.thread!.end();
    const waiting = request(1);
    await ended;
    expect(Object.keys(await running)).toEqual(['y']);
    const err = await errorOf(await waiting);
    expect(err.status).toBe(503);
    expect(err.error).toBe('the model stopped while running this request; it is being restarted, retry shortly');
    expect(await until(async () => (await app.request('/v2/health/ready')).status === 200)).toBe(true);
    await model.release();
  });
});
