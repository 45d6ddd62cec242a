import { describe, expect, it } from 'vitest';
import { createFunctionApp } from '../http/app.ts';
import { createActivity } from '../http/activity.ts';
import { FunctionHost } from '../function/host.ts';
import { resolveDeclaration } from '../function/check.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../testing/index.ts';
import { isTraffic, routeClass } from './route-class.ts';
import { loadFunctionModel } from '../serve/server.ts';
import { createMetrics } from './metrics.ts';

describe('the table of route classes', () => {
  it('classifies every built-in route and leaves the rest to the function', () => {
    const cases: [string, string, string][] = [
      ['GET', '/v2/health/live', 'probe'],
      ['GET', '/v2/health/ready', 'probe'],
      ['GET', '/v2/models/iris/ready', 'probe'],
      ['GET', '/v2/models/iris/versions/1/ready', 'probe'],
      ['GET', '/stats', 'observation'],
      ['GET', '/metrics', 'observation'],
      ['GET', '/', 'observation'],
      ['GET', '/docs', 'observation'],
      ['GET', '/openapi.json', 'observation'],
      ['GET', '/examples/:file', 'observation'],
      ['GET', '/examples/speech.wav', 'observation'],
      ['GET', '/v2', 'observation'],
      ['GET', '/v2/models/iris', 'observation'],
      ['GET', '/v2/models/iris/versions/1', 'observation'],
      ['POST', '/v2/models/iris/infer', 'inference'],
      ['POST', '/v2/models/iris/versions/1/infer', 'inference'],
      ['POST', '/predict', 'inference'],
      ['POST', '/species', 'function'],
      ['GET', '/hello', 'function'],
      ['POST', '/stats', 'function'],
    ];
    expect(cases.map(([m, p]) => [m, p, routeClass(m, p)])).toEqual(cases);
    expect(isTraffic('inference', 200)).toBe(true);
    expect(isTraffic('function', 500)).toBe(true);
    for (const status of [401, 403, 404, 405, 429]) expect(isTraffic('inference', status)).toBe(false);
    expect(isTraffic('observation', 200)).toBe(false);
    expect(isTraffic('probe', 200)).toBe(false);
  });

  it('keeps a function awake only for its traffic: not for observation, probes or refused requests', async () => {
    const KEY = 'k-0123456789abcdef';
    process.env.MODELFN_API_KEYS_IRIS = KEY;
    try {
      const config = testConfig();
      const fn = resolveDeclaration({ auth: { apiKeys: 'iris-keys' } }, { dir: `${ROOT}/functions/iris`, folderName: 'iris' }, config);
      const host = new FunctionHost(fn);
      const metrics = createMetrics();
      const activity = createActivity();
      const { app, close } = createFunctionApp(host, { config, logger: memoryLogger(), metrics, activity });
      await loadFunctionModel(host, config, metrics);
      try {
        const auth = { Authorization: `Bearer ${KEY}` };
        for (const path of ['/stats', '/metrics', '/docs', '/openapi.json', '/v2/models/iris', '/v2/health/ready', '/v2/models/iris/ready']) {
          await app.request(path, { headers: auth });
        }
        // Refused: no key, a wrong method, an unknown route.
        await app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
        await app.request('/predict', { headers: auth });
        await app.request('/nothing-here', { method: 'POST', headers: auth });
        expect(activity).toMatchObject({ inFlight: 0, total: 0 });
        const res = await app.request('/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, auth));
        expect(res.status).toBe(200);
        expect(activity).toMatchObject({ inFlight: 0, total: 1 });
      } finally {
        close();
        await host.model.release();
      }
    } finally {
      delete process.env.MODELFN_API_KEYS_IRIS;
    }
  });
});
