/**
 * A function that can sleep: warmed up before it listens, its traffic counted (probes not), and
 * its control server closing and reopening its port, never while a request is in flight.
 */
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlApp } from './control.ts';
import { loadFunctionDir } from '../function/discover.ts';
import { startFunction, type RunningFunction } from './server.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../testing/index.ts';
import { freshConnection, until } from '../testing/helpers.ts';

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
    const sent = Date.now();
    expect((await predict()).status).toBe(200);
    const after = await state();
    expect(after).toMatchObject({ ready: true, listening: true, in_flight: 0, requests: before + 1 });
    // Idle since that request: no longer than it has been since it was sent, however slow the machine.
    expect(after.idle_ms).toBeLessThanOrEqual(Date.now() - sent + 1);
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
    const running = await startFunction(await loadFunctionDir(resolve(ROOT, 'functions/iris'), config), config, memoryLogger());
    try {
      const control = controlApp(running, { drainTimeoutMs: 5000 });
      // A request held in flight by its body, sent in two parts: no clock, whatever the machine.
      const utf8 = new TextEncoder();
      let finish!: () => void;
      const body = new ReadableStream<Uint8Array>({
        start(stream) {
          stream.enqueue(utf8.encode('{"instances": [[5.1, 3.5, '));
          finish = () => {
            stream.enqueue(utf8.encode('1.4, 0.2]]}'));
            stream.close();
          };
        },
      });
      const held = fetch(`${running.url}/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body, duplex: 'half' } as RequestInit);
      expect(await until(async () => (await (await control.request('/state')).json() as { in_flight: number }).in_flight === 1)).toBe(true);
      const refused = await control.request('/sleep?idle_ms=0', { method: 'POST' });
      expect(refused.status).toBe(409);
      expect(await refused.json()).toMatchObject({ in_flight: 1 });
      finish();
      const answer = await held;
      expect(answer.status).toBe(200);
      expect(((await answer.json()) as { predictions: { label: number }[] }).predictions[0].label).toBe(0);
      expect(running.listening).toBe(true);
    } finally {
      await running.shutdown();
    }
  });
});
