import { describe, expect, it } from 'vitest';
import { FIXTURES, errorOf, openDeclared, postJson } from '../testing/index.ts';

// runtime/testing/fixtures/slow.onnx runs `iterations` rounds of a 256x256 MatMul (about 10 µs each).
const request = (iterations: number) => postJson({
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
    { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
  ],
});

describe('a model slower than its timeout', () => {
  it('answers 504 JSON at the deadline while the server stays responsive, then serves again', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 300 } });
    expect((await app.request('/v2/models/slow/infer', request(1))).status).toBe(200);
    const started = performance.now();
    const slow = app.request('/v2/models/slow/infer', request(400_000));
    // Inference runs on its own thread: the event loop still answers while the model works.
    await new Promise((r) => setTimeout(r, 100));
    const probeStarted = performance.now();
    expect((await app.request('/v2/health/live')).status).toBe(200);
    expect(performance.now() - probeStarted).toBeLessThan(100);
    const err = await errorOf(await slow);
    const elapsed = performance.now() - started;
    expect(err).toEqual({ status: 504, error: "request to 'slow' timed out after 300 ms; its work was stopped" });
    expect(elapsed).toBeLessThan(1500);
    // The abandoned run finishes on its thread; afterwards the model answers again.
    const deadline = Date.now() + 30_000;
    let status = 0;
    while (status !== 200 && Date.now() < deadline) status = (await app.request('/v2/models/slow/infer', request(1))).status;
    expect(status).toBe(200);
  });
});
