import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { describe, expect, it } from 'vitest';
import type { Hono } from 'hono';
import { FIXTURES, errorOf, openDeclared, postJson } from '../testing/index.ts';
import { until } from '../testing/helpers.ts';

// runtime/testing/fixtures/slow.onnx runs `iterations` rounds of a 256x256 MatMul; it cannot
// batch (its `iterations` input has no batch dimension), so its requests queue one behind another.
const request = (iterations: number, init: RequestInit = {}) => ({
  ...postJson({
    inputs: [
      { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
      { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
    ],
  }),
  ...init,
});

/** A metric's value from the function's /metrics (0 when absent). */
async function metric(app: Hono, pattern: RegExp): Promise<number> {
  const text = await (await app.request('/metrics')).text();
  return Number(pattern.exec(text)?.[1] ?? 0);
}

/** Iterations that keep this machine's model busy for about `ms`. */
async function iterationsFor(app: Hono, ms: number): Promise<number> {
  const probe = 20_000;
  const started = performance.now();
  expect((await app.request('/v2/models/slow/infer', request(probe))).status).toBe(200);
  return Math.ceil((probe * ms) / Math.max(1, performance.now() - started));
}

// The gauge counts the /metrics request that reads it too.
const running = async (app: Hono) => (await metric(app, /modelfn_requests_in_flight (\d+)/)) >= 2;
const ran = (app: Hono) => metric(app, /modelfn_inference_duration_seconds_count\{model="slow"\} (\d+)/);
const queued = (app: Hono) => metric(app, /modelfn_batch_queue_depth\{model="slow"\} (\d+)/);
const shed = (app: Hono, reason: string) => metric(app, new RegExp(`modelfn_requests_shed_total\\{model="slow",reason="${reason}"\\} (\\d+)`));

describe('deadlines and cancellation, all the way down', () => {
  it('drops a queued request whose client left: it never reaches onnxruntime', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 60_000 } });
    const long = await iterationsFor(app, 1500);
    const before = await ran(app);
    const busy = app.request('/v2/models/slow/infer', request(long));
    const client = new AbortController();
    const left = app.request('/v2/models/slow/infer', request(long, { signal: client.signal }));
    expect(await until(async () => (await queued(app)) === 1), 'the second request waits in the queue').toBe(true);
    client.abort();
    expect(await until(async () => (await shed(app, 'cancelled')) === 1), 'the abandoned request is dropped').toBe(true);
    expect(await queued(app)).toBe(0);
    expect((await left).status).toBe(499);
    expect((await busy).status).toBe(200);
    // Only the first request ran.
    expect((await ran(app)) - before).toBe(1);
  });

  it('drops a queued request whose client closed its TCP connection, served over HTTP', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 60_000 } });
    const long = await iterationsFor(app, 1500);
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise((r) => server.once('listening', r));
    const { port } = server.address() as AddressInfo;
    const send = (iterations: number) => {
      const init = request(iterations);
      const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path: '/v2/models/slow/infer', headers: init.headers as Record<string, string> });
      const answer = new Promise<{ status: number; id: string | undefined }>((resolve, reject) => {
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode!, id: res.headers['x-request-id'] as string | undefined }));
        });
        req.on('error', reject);
      });
      req.end(init.body as string);
      return { req, answer };
    };
    try {
      const before = await ran(app);
      const busy = send(long);
      const left = send(long);
      left.answer.catch(() => {});
      expect(await until(async () => (await queued(app)) === 1), 'the second request waits in the queue').toBe(true);
      left.req.destroy();
      expect(await until(async () => (await shed(app, 'cancelled')) === 1), 'the request whose connection closed is dropped').toBe(true);
      expect(await queued(app)).toBe(0);
      const answered = await busy.answer;
      expect(answered.status).toBe(200);
      expect(answered.id).toMatch(/^[0-9a-f-]{36}$/);
      expect((await ran(app)) - before).toBe(1);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('answers 504 at the deadline and drops the queued work: a 504 means the work stopped', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 400 } });
    // The first run takes several times the timeout, so the second is still queued at its deadline.
    const long = await iterationsFor(app, 2000);
    const before = await ran(app);
    const busy = app.request('/v2/models/slow/infer', request(long));
    expect(await until(() => running(app)), 'the first request runs').toBe(true);
    const late = await errorOf(await app.request('/v2/models/slow/infer', request(1)));
    expect(late).toEqual({ status: 504, error: "request to 'slow' timed out after 400 ms; its work was stopped" });
    expect(await shed(app, 'deadline_exceeded')).toBe(1);
    expect((await busy).status).toBe(504);
    // The first run was under way and finished on its thread; the second never ran.
    expect(await until(async () => (await ran(app)) - before >= 1), 'the first run ends').toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect((await ran(app)) - before).toBe(1);
    expect((await app.request('/v2/models/slow/infer', request(1))).status).toBe(200);
  });

  it('refuses at once with 429 JSON and Retry-After when the queue is full, batching or not', async () => {
    const { app } = await openDeclared(FIXTURES, { name: 'slow', model: 'slow.onnx', limits: { timeoutMs: 60_000, maxQueue: 2 } });
    const long = await iterationsFor(app, 1000);
    const busy = app.request('/v2/models/slow/infer', request(long));
    expect(await until(() => running(app)), 'the first request runs').toBe(true);
    const waiting = [app.request('/v2/models/slow/infer', request(1)), app.request('/v2/models/slow/infer', request(1))];
    expect(await until(async () => (await queued(app)) === 2), 'two requests wait').toBe(true);
    const started = performance.now();
    const refused = await app.request('/v2/models/slow/infer', request(1));
    expect(performance.now() - started).toBeLessThan(500);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ error: 'the model is overloaded: 2 rows are already waiting; retry shortly' });
    expect(await shed(app, 'overloaded')).toBe(1);
    expect((await busy).status).toBe(200);
    for (const w of waiting) expect((await w).status).toBe(200);
  });
});
