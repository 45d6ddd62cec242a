import { describe, expect, it } from 'vitest';
import { FIXTURES, errorOf, openDeclared, postJson } from '../testing/index.ts';
import { metricSample, until } from '../testing/helpers.ts';

// runtime/testing/fixtures/slow.onnx runs `iterations` rounds of a 256x256 MatMul (about 10 µs each).
const request = (iterations: number) => postJson({
  inputs: [
    { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
    { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
  ],
});

// The order of events, not the clock: a model run is counted once it has ended.
const RUNS = 'modelfn_inference_duration_seconds_count{model="slow"}';

describe('a model slower than its timeout', () => {
  it('answers 504 JSON at the deadline, before its run ends, while the server stays responsive, then serves again', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 300 } });
    expect((await app.request('/v2/models/slow/infer', request(1))).status).toBe(200);
    const runs = await metricSample(app, RUNS);
    expect(runs).toBe(1);
    // 400 000 rounds: seconds here, far longer than a probe and a metrics scrape on any machine.
    const slow = app.request('/v2/models/slow/infer', request(400_000));
    expect(await until(async () => (await metricSample(app, 'modelfn_requests_in_flight')) >= 1)).toBe(true);
    // Inference runs on its own thread: the event loop answers a probe while the model works.
    expect((await app.request('/v2/health/live')).status).toBe(200);
    expect(await metricSample(app, RUNS)).toBe(runs);
    const err = await errorOf(await slow);
    expect(err).toEqual({ status: 504, error: "request to 'slow' timed out after 300 ms; its work was stopped" });
    // The deadline, not the end of the run: the run is still going when the 504 is sent.
    expect(await metricSample(app, RUNS)).toBe(runs);
    // The abandoned run finishes on its thread; afterwards the model answers again.
    expect(await until(async () => (await metricSample(app, RUNS)) === runs + 1, 120_000)).toBe(true);
    expect((await app.request('/v2/models/slow/infer', request(1))).status).toBe(200);
  }, 120_000);
});
