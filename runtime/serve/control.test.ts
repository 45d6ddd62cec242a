/**
 * A function that can sleep: warmed up before it listens, its traffic counted (probes not), and
 * its control server closing and reopening its port, never while a request is in flight.
 */
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlApp } from './control.ts';
import { loadFunctionDir, resolveFunction } from '../function/discover.ts';
import { startFunction, type RunningFunction } from './server.ts';
import { FIXTURES, ROOT, memoryLogger, postJson, testConfig } from '../testing/index.ts';
import { freshConnection } from '../testing/helpers.ts';

const fresh = (url: string) => freshConnection(url, '/v2/health/ready');

describe('a function with a control server', () => {
  const config = testConfig({ PORT: '0' });
  const logger = memoryLogger();
  let running: RunningFunction;
  let control: ReturnType<typeof controlApp>;
  const predict = () => fetch(`${running.url}/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
  const state = async () => (await control.request('/state')).json() as Promise<any>;

  beforeAll(async () => {
    running = await startFunction(await loadFunctionDir(resolve(ROOT, 'functions/iris'), config), config, logger);
    control = controlApp(running, { drainTimeoutMs: 5000 });
  });
  afterAll(async () => {
    await running.listen();
    await running.shutdown();
  });

  it('warms up with the example before listening, and says how long each phase took', async () => {
    const warmed = logger.lines.findIndex((l) => l.msg === 'warmed up');
    expect(warmed).toBeGreaterThan(-1);
    expect(warmed).toBeLessThan(logger.lines.findIndex((l) => l.msg === 'listening'));
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    for (const phase of ['process', 'model_load', 'warm_up']) expect(metrics).toMatch(new RegExp(`^modelfn_startup_seconds\\{phase="${phase}"\\} [0-9.e-]+$`, 'm'));
    const s = await state();
    expect(s.startup.warm_up_ms).toBeGreaterThan(0);
    expect(s.startup.model_load_ms).toBeGreaterThan(0);
  });

  it('counts requests but not probes or metrics scrapes', async () => {
    const before = (await state()).requests;
    for (let i = 0; i < 3; i++) await (await fetch(`${running.url}/v2/health/ready`)).text();
    await (await fetch(`${running.url}/metrics`)).text();
    expect((await state()).requests).toBe(before);
    expect((await predict()).status).toBe(200);
    const after = await state();
    expect(after).toMatchObject({ ready: true, listening: true, in_flight: 0, requests: before + 1 });
    expect(after.idle_ms).toBeLessThan(1000);
  });

  it('refuses to sleep when a request came within idle_ms', async () => {
    await (await predict()).text();
    const busy = await control.request('/sleep?idle_ms=60000', { method: 'POST' });
    expect(busy.status).toBe(409);
    expect(await busy.json()).toMatchObject({ error: 'busy', listening: true });
    expect(await fresh(running.url)).toBe(200);
  });

  it('sleeps: its port refuses connections, keep-alive ones included, until it wakes', async () => {
    await (await predict()).text(); // leaves a kept-alive connection in fetch's pool
    const slept = await control.request('/sleep?idle_ms=0', { method: 'POST' });
    expect(slept.status).toBe(200);
    expect(await slept.json()).toMatchObject({ asleep: true, drained: true, listening: false });
    expect(await fresh(running.url)).toBe('ECONNREFUSED');
    await expect(predict()).rejects.toThrow();
    const woke = await control.request('/wake', { method: 'POST' });
    expect(await woke.json()).toMatchObject({ awake: true, listening: true, wakes: 1 });
    expect((await predict()).status).toBe(200);
    expect(await (await fetch(`${running.url}/metrics`)).text()).toMatch(/^modelfn_wakes_total 1$/m);
  });

  it('lets the control server answer the activator only', async () => {
    const guarded = controlApp(running, { drainTimeoutMs: 1000, allow: async (address) => address === '10.0.0.9' });
    const res = await guarded.request('/state', {}, { incoming: { socket: { remoteAddress: '10.0.0.8' } } });
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: 'the control server answers the activator only' });
    expect((await guarded.request('/state', {}, { incoming: { socket: { remoteAddress: '10.0.0.9' } } })).status).toBe(200);
  });
});

describe('a request in flight when the activator asks the function to sleep', () => {
  it('is answered, and the function stays awake', async () => {
    const config = testConfig({ PORT: '0', MODELFN_WARMUP: 'false' });
    // slow.onnx runs `iterations` rounds of a 256x256 MatMul (about 10 µs each).
    const fn = resolveFunction(FIXTURES, { name: 'slow', model: 'slow.onnx', batching: { enabled: false } }, undefined, config, 'slow');
    const running = await startFunction(fn, config, memoryLogger());
    try {
      const control = controlApp(running, { drainTimeoutMs: 5000 });
      const slow = fetch(`${running.url}/v2/models/slow/infer`, postJson({ inputs: [
        { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
        { name: 'iterations', datatype: 'INT64', shape: [1], data: [40_000] },
      ] }));
      await new Promise((r) => setTimeout(r, 100));
      const refused = await control.request('/sleep?idle_ms=0', { method: 'POST' });
      expect(refused.status).toBe(409);
      expect(await refused.json()).toMatchObject({ in_flight: 1 });
      expect((await slow).status).toBe(200);
      expect(running.listening).toBe(true);
    } finally {
      await running.shutdown();
    }
  });
});
