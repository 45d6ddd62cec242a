import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { addWindows, quantileMs, summarize, versionedStats, type FunctionStats, type StatsWindow } from '../core/stats.ts';
import { ROOT, openDeclared, postJson } from '../testing/index.ts';

const LE = [0.001, 0.01, 0.1];

describe('the live figures (GET /stats)', () => {
  it('reads quantiles from histogram buckets as Prometheus does', () => {
    // 10 requests under 1 ms, 10 between 1 and 10 ms.
    expect(quantileMs(0.5, LE, [10, 10, 0, 0])).toBe(1);
    expect(quantileMs(0.75, LE, [10, 10, 0, 0])).toBe(5.5);
    expect(quantileMs(0.99, LE, [0, 0, 0, 4])).toBe(100);
    expect(quantileMs(0.5, LE, [0, 0, 0, 0])).toBeNull();
  });

  it('adds up the windows of replicas', () => {
    const a: StatsWindow = { seconds: 60, requests: 10, errors: 1, le: LE, counts: [10, 0, 0, 0], batches: 5, batchRows: 10 };
    const b: StatsWindow = { seconds: 30, requests: 30, errors: 0, le: LE, counts: [0, 30, 0, 0], batches: 30, batchRows: 30 };
    const sum = summarize('x', 'ready', addWindows([a, b]), 2, 2);
    expect(sum).toMatchObject({ replicas: 2, readyReplicas: 2, windowSeconds: 60, requestsPerSecond: 0.667, errorsPerSecond: 0.0167, batchSize: 1.14 });
    expect(sum.latencyMs.p50).toBeGreaterThan(1);
  });

  it("gives a function with versions each version's figures and share, and its own without the shadow's copies", () => {
    const window = (requests: number, counts: number[], errors = 0): StatsWindow => ({ seconds: 60, requests, errors, le: LE, counts, batches: 0, batchRows: 0 });
    // Version 1 at two replicas, version 2 at one, version 3 (a shadow) at one; version 4 has no replica answering.
    const answers: FunctionStats[] = [
      { ...summarize('flowers', 'ready', window(60, [60, 0, 0, 0])), version: '1' },
      { ...summarize('flowers', 'ready', window(60, [0, 60, 0, 0])), version: '1' },
      { ...summarize('flowers', 'ready', window(30, [0, 0, 27, 3], 3)), version: '2' },
      { ...summarize('flowers', 'loading', window(45, [45, 0, 0, 0]), 1, 0, 'loading its model'), version: '3' },
    ];
    const split = { traffic: [{ version: '1', percent: 80 }, { version: '2', percent: 20 }], shadow: [{ version: '3', percent: 50 }] };
    const stats = versionedStats('flowers', ['1', '2', '3', '4'], answers, split);
    expect(stats).toMatchObject({ name: 'flowers', state: 'ready', replicas: 4, readyReplicas: 3, requestsPerSecond: 2.5, errorsPerSecond: 0.05 });
    expect(stats.window.requests).toBe(150);
    expect(stats.version).toBeUndefined();
    const rows = stats.versions!.map(({ version, traffic, shadow, state, reason, replicas, readyReplicas, requestsPerSecond, errorsPerSecond, latencyMs }) => ({ version, traffic, shadow, state, reason, replicas, readyReplicas, requestsPerSecond, errorsPerSecond, latencyMs }));
    expect(rows).toEqual([
      { version: '1', traffic: 80, shadow: undefined, state: 'ready', reason: undefined, replicas: 2, readyReplicas: 2, requestsPerSecond: 2, errorsPerSecond: 0, latencyMs: { p50: 1, p99: 9.82 } },
      { version: '2', traffic: 20, shadow: undefined, state: 'ready', reason: undefined, replicas: 1, readyReplicas: 1, requestsPerSecond: 0.5, errorsPerSecond: 0.05, latencyMs: { p50: 60, p99: 100 } },
      { version: '3', traffic: 0, shadow: 50, state: 'loading', reason: 'loading its model', replicas: 1, readyReplicas: 0, requestsPerSecond: 0.75, errorsPerSecond: 0, latencyMs: { p50: 0.5, p99: 0.99 } },
      { version: '4', traffic: 0, shadow: undefined, state: 'unavailable', reason: 'no replica of version 4 is answering', replicas: 0, readyReplicas: 0, requestsPerSecond: 0, errorsPerSecond: 0, latencyMs: { p50: null, p99: null } },
    ]);
    // The JSON begins as nginx's page lookup reads it: the function's state, then each version's share.
    const json = JSON.stringify(stats);
    expect(json).toMatch(/^\{"name":"flowers","state":"ready"/);
    expect(json).toContain('{"version":"2","traffic":20,"state"');
    expect(json).toContain('{"version":"3","traffic":0,"shadow":50,"state"');
  });

  it("counts a function's work over the last minute from its metrics, not the polling of its pages", async () => {
    const { app } = await openDeclared(resolve(ROOT, 'functions/iris'), {
      routes(hono) {
        hono.post('/boom', () => {
          throw new Error('broken on purpose');
        });
      },
    });
    for (let i = 0; i < 5; i++) expect((await app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3, 5.2, 2.3]] }))).status).toBe(200);
    expect((await app.request('/boom', { method: 'POST' })).status).toBe(500);
    for (const path of ['/metrics', '/stats', '/docs', '/openapi.json', '/v2/health/ready', '/v2/models/iris']) expect((await app.request(path)).status).toBe(200);
    const stats = (await (await app.request('/stats')).json()) as FunctionStats;
    expect(stats).toMatchObject({ name: 'iris', state: 'ready', replicas: 1, readyReplicas: 1, batchSize: 2 });
    expect(stats.window).toMatchObject({ requests: 6, errors: 1, batches: 5, batchRows: 10 });
    expect(stats.window.counts.reduce((x, y) => x + y, 0)).toBe(6);
    expect(stats.latencyMs.p50).toBeGreaterThan(0);
    expect(stats.latencyMs.p99).toBeGreaterThanOrEqual(stats.latencyMs.p50!);
    expect(stats.requestsPerSecond).toBeGreaterThan(0);
  });

  it('gathers the replicas\' figures at most once a second, however many ask', async () => {
    // Two replicas stand in for a function's others: plain HTTP servers answering /stats?replica=self.
    const { createServer } = await import('node:http');
    let asked = 0;
    const window: StatsWindow = { seconds: 60, requests: 6, errors: 0, le: [0.001], counts: [6, 0], batches: 0, batchRows: 0 };
    const replica = createServer((req, res) => {
      asked++;
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(summarize('iris', 'ready', window, 1, 1)));
    });
    await new Promise<void>((r) => replica.listen(0, '127.0.0.1', r));
    const port = (replica.address() as { port: number }).port;
    try {
      const { app } = await openDeclared(resolve(ROOT, 'functions/iris'), {}, { MODELFN_PEERS: `127.0.0.1:${port}` });
      const answers = await Promise.all(Array.from({ length: 20 }, () => app.request('/stats')));
      for (const a of answers) expect(await a.json()).toMatchObject({ name: 'iris', state: 'ready', window: { requests: 6 } });
      expect(asked).toBe(1);
      await new Promise((r) => setTimeout(r, 1100));
      await app.request('/stats');
      expect(asked).toBe(2);
    } finally {
      replica.close();
    }
  });
});
