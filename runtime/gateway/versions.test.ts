/**
 * Versions in embedded mode (npm start), on the real iris model: the split over unversioned
 * paths, the versioned protocol paths, the traffic key, the version header on every route, and a
 * shadow whose answers the client never sees.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from './embedded.ts';
import { chooseVersion } from '../function/traffic.ts';
import type { FunctionStats } from '../core/stats.ts';
import { ROOT, errorOf, memoryLogger, openFunctionDir, postJson, testConfig } from '../testing/index.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-versions-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const IRIS = join(ROOT, 'functions/iris/model.onnx');
const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

/** A functions folder with `flowers` in three versions (copies of iris): 80/20 over 1 and 2, 3 shadowed. */
function functionsDir(): string {
  const dir = join(scratch, 'functions');
  for (const v of ['1', '2', '3']) {
    mkdirSync(join(dir, 'flowers', v), { recursive: true });
    copyFileSync(IRIS, join(dir, 'flowers', v, 'model.onnx'));
  }
  writeFileSync(join(dir, 'flowers/function.ts'), [
    'export default {',
    "  traffic: { '1': 80, '2': 20 },",
    "  shadow: { '3': 50 },",
    "  routes(app) { app.get('/hello', (c) => c.json({ hello: true })); },",
    '};',
    '',
  ].join('\n'));
  mkdirSync(join(dir, 'iris'));
  copyFileSync(IRIS, join(dir, 'iris/model.onnx'));
  return dir;
}

describe('a function with versions in embedded mode', () => {
  let server: EmbeddedServer;
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: functionsDir(), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
  });
  afterAll(() => server.shutdown());
  const infer = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, postJson(FLOWER, headers));

  it('splits 1,000 unversioned requests 80/20 within 5 points, and says which version answered in the header and model_version', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const res = await infer('/v2/models/flowers/infer');
      expect(res.status).toBe(200);
      const body = (await res.json()) as { model_version: string };
      expect(res.headers.get('x-modelfn-version')).toBe(body.model_version);
      counts[body.model_version] = (counts[body.model_version] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['1', '2']);
    // 1,000 draws of 20%: sd 12.6, so 7 points is 5.5 sd (a correct split misses it about once in 10^7 runs).
    expect(Math.abs(counts['2'] / 1000 - 0.2)).toBeLessThan(0.07);
  });

  it('reaches version N on its versioned paths every time, the shadowed one too, and answers 404 naming the versions for another', async () => {
    for (const v of ['1', '2', '3']) {
      for (let i = 0; i < 20; i++) {
        const res = await infer(`/v2/models/flowers/versions/${v}/infer`);
        expect([res.status, res.headers.get('x-modelfn-version'), ((await res.json()) as { model_version: string }).model_version]).toEqual([200, v, v]);
      }
      expect(await (await fetch(`${server.url}/v2/models/flowers/versions/${v}/ready`)).json()).toEqual({ name: 'flowers', ready: true });
    }
    expect(((await (await fetch(`${server.url}/v2/models/flowers`)).json()) as { versions: string[] }).versions).toEqual(['1', '2', '3']);
    expect(await errorOf(await infer('/v2/models/flowers/versions/9/infer'))).toEqual({ status: 404, error: "model 'flowers' has no version '9' (versions: 1, 2, 3)" });
  });

  it('keeps a client on one version by its traffic key, the version nginx split_clients would pick', async () => {
    for (const key of ['user-1', 'user-42', 'k-7', 'session-xyz']) {
      const expected = chooseVersion([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], key);
      for (let i = 0; i < 10; i++) {
        const res = await infer('/v2/models/flowers/infer', { 'X-Modelfn-Traffic-Key': key });
        expect(res.headers.get('x-modelfn-version'), key).toBe(expected);
        await res.arrayBuffer();
      }
    }
    // Keys the split sends to each side exist among these (user-42 and k-7 go to 2 in nginx).
    expect(new Set(['user-1', 'user-42'].map((k) => chooseVersion([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], k)))).toEqual(new Set(['1', '2']));
  });

  it('names the version on every route: prefix routes, custom routes, docs and errors', async () => {
    const key = { 'X-Modelfn-Traffic-Key': 'user-42' };
    for (const [path, init] of [
      ['/flowers/predict', postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, key)],
      ['/flowers/hello', { headers: key }],
      ['/flowers/docs', { headers: key }],
      ['/flowers/nowhere', { headers: key }],
      ['/flowers/predict', postJson('{not json', key)],
    ] as const) {
      const res = await fetch(`${server.url}${path}`, init);
      expect(res.headers.get('x-modelfn-version'), path).toBe('2');
      await res.arrayBuffer();
    }
    // A function with one version says so too, as it always did in model_version.
    const iris = await fetch(`${server.url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
    expect(iris.headers.get('x-modelfn-version')).toBe('1');
  });

  it('answers each version\'s figures at /flowers/stats with its share of the split; the function\'s own leave the shadow\'s copies out', async () => {
    const before = (await (await fetch(`${server.url}/flowers/stats`)).json()) as FunctionStats;
    for (const [v, n] of [['1', 6], ['2', 3], ['3', 2]] as const) {
      for (let i = 0; i < n; i++) expect((await infer(`/v2/models/flowers/versions/${v}/infer`)).status).toBe(200);
    }
    const stats = (await (await fetch(`${server.url}/flowers/stats`)).json()) as FunctionStats;
    expect(stats).toMatchObject({ name: 'flowers', state: 'ready', replicas: 3, readyReplicas: 3 });
    expect(stats.versions!.map(({ version, traffic, shadow, state, replicas }) => ({ version, traffic, shadow, state, replicas }))).toEqual([
      { version: '1', traffic: 80, shadow: undefined, state: 'ready', replicas: 1 },
      { version: '2', traffic: 20, shadow: undefined, state: 'ready', replicas: 1 },
      { version: '3', traffic: 0, shadow: 50, state: 'ready', replicas: 1 },
    ]);
    const grown = stats.versions!.map((v, i) => v.window.requests - before.versions![i].window.requests);
    expect(grown).toEqual([6, 3, 2]);
    for (const v of stats.versions!) expect([v.requestsPerSecond, v.latencyMs.p50, v.latencyMs.p99].every((x) => x! > 0), v.version).toBe(true);
    expect(stats.window.requests - before.window.requests).toBe(9);
    // A version's own answer says which it is; the gateway's answers the function.
    expect(stats.version).toBeUndefined();
  });

  it('mirrors its share to the shadow version: counted in that version\'s metrics, never seen by the client', async () => {
    const slot = server.slots().find((s) => s.fn.name === 'flowers')!;
    const shadowRuns = async () => {
      const text = await (await slot.versions!.get('3')!.app.request('/metrics')).text();
      const line = text.split('\n').find((l) => l.startsWith('modelfn_inference_duration_seconds_count{') && l.includes('version="3"'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await shadowRuns();
    const answered: string[] = [];
    for (let i = 0; i < 400; i++) {
      const res = await infer('/v2/models/flowers/infer');
      answered.push(res.headers.get('x-modelfn-version')!);
      await res.arrayBuffer();
    }
    expect(answered).not.toContain('3');
    // Copies are not awaited by the client: give the last ones a moment.
    let copies = 0;
    for (let i = 0; i < 50 && (copies = (await shadowRuns()) - before) < 160; i++) await new Promise((r) => setTimeout(r, 20));
    expect(copies).toBeGreaterThan(150);
    expect(copies).toBeLessThan(250);
  });
});

describe('the docs of a function with versions', () => {
  it('lists every version with its share, and the versioned paths in its OpenAPI document', async () => {
    const server = await startEmbedded({ functionsDir: join(scratch, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    try {
      const page = await (await fetch(`${server.url}/flowers/docs`, { headers: { 'X-Modelfn-Traffic-Key': 'user-1' } })).text();
      expect(page).toContain('<li data-version="1"><strong>version 1</strong> (this page): <span data-field="share">80%</span>');
      expect(page).toContain('<li data-version="2"><strong>version 2</strong>: <span data-field="share">20%</span>');
      expect(page).toContain('<li data-version="3"><strong>version 3</strong>: <span data-field="share">shadow 50%</span>');
      // Its script shows the split in force from the function's figures.
      expect(page).toContain('<section class="versions" data-stats="/flowers/stats">');
      const doc = (await (await fetch(`${server.url}/flowers/openapi.json`)).json()) as { paths: Record<string, { post?: { parameters?: { schema: { enum: string[] } }[] } }> };
      expect(doc.paths['/v2/models/flowers/versions/{version}/infer'].post!.parameters![0].schema.enum).toEqual(['1', '2', '3']);
      // The gateway page's card shows the split in force too.
      const gatewayPage = await (await fetch(`${server.url}/`, { headers: { Accept: 'text/html' } })).text();
      const card = gatewayPage.slice(gatewayPage.indexOf('<section class="card" id="fn-flowers"'));
      expect(card.slice(0, card.indexOf('</section>'))).toContain('<li data-version="2"><strong>version 2</strong>: <span data-field="share">20%</span>');
      // The live view has a row per version under the function's, with its share.
      const live = gatewayPage.slice(gatewayPage.indexOf('<tr data-live="flowers"'), gatewayPage.indexOf('<tr data-live="iris"'));
      expect([...live.matchAll(/<tr data-live-version="flowers" data-version="(\d)"[^]*?data-field="share" class="share">([^<]*)</g)].map((m) => [m[1], m[2]])).toEqual([['1', '80%'], ['2', '20%'], ['3', 'shadow 50%']]);
      expect(gatewayPage.slice(gatewayPage.indexOf('<tr data-live="iris"'))).not.toContain('data-live-version="iris"');
      // A function with one version shows no list.
      expect(await (await fetch(`${server.url}/iris/docs`)).text()).not.toContain('<li data-version=');
    } finally {
      await server.shutdown();
    }
  });
});

describe('one version per server (what each version\'s containers run)', () => {
  it('serves the version MODELFN_VERSION names, the highest without it, and refuses one that does not exist', async () => {
    const dir = join(scratch, 'functions/flowers');
    for (const [env, expected] of [[{}, '3'], [{ MODELFN_VERSION: '1' }, '1']] as const) {
      const { app, model } = await openFunctionDir(dir, env);
      try {
        const res = await app.request('/v2/models/flowers/infer', postJson(FLOWER));
        expect([res.headers.get('x-modelfn-version'), ((await res.json()) as { model_version: string }).model_version]).toEqual([expected, expected]);
        expect(await (await app.request('/metrics')).text()).toMatch(new RegExp(`^modelfn_inference_duration_seconds_count\\{version="${expected}",model="flowers"\\} 1$`, 'm'));
        // Another version's path is not this server's: nginx sends it to that version's containers.
        const other = expected === '1' ? '2' : '1';
        expect(await errorOf(await app.request(`/v2/models/flowers/versions/${other}/ready`))).toEqual({ status: 404, error: `model 'flowers' has no version '${other}' (versions: 1, 2, 3)` });
      } finally {
        await model.release();
      }
    }
    await expect(openFunctionDir(dir, { MODELFN_VERSION: '9' })).rejects.toThrow(`MODELFN_VERSION="9": function 'flowers' has no such version (versions: 1, 2, 3)`);
  });
});
