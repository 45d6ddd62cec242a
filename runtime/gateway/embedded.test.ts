import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from './embedded.ts';
import { gatewayRoutes } from './routes.ts';
import { VERSION } from '../core/version.ts';
import { conformanceSuite, ROOT, errorOf, memoryLogger, postJson, testConfig } from '../testing/index.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-embedded-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('embedded mode: every function on one port', () => {
  let server: EmbeddedServer;
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
  });
  afterAll(() => server.shutdown());

  for (const name of ['digits', 'iris', 'vad']) {
    conformanceSuite(`${name} in embedded mode`, async () => ({
      name,
      request: (path, init) => fetch(path === '/metrics' ? `${server.url}/${name}/metrics` : `${server.url}${path}`, init),
      example: server.slots().find((s) => s.fn.name === name)!.host!.fn.example,
    }));
  }

  it('answers the gateway routes: GET /, health, unknown paths and models, the prefix redirect', async () => {
    // Only routes that work are advertised: vad has three inputs, so no /predict, but its own route.
    expect(await (await fetch(`${server.url}/`)).json()).toEqual({
      name: 'modelfn',
      version: VERSION,
      functions: [
        { name: 'digits', prefix: '/digits', model: '/v2/models/digits', predict: '/digits/predict', docs: '/digits/docs', replicas: 1 },
        { name: 'iris', prefix: '/iris', model: '/v2/models/iris', predict: '/iris/predict', routes: ['POST /iris/species'], docs: '/iris/docs', replicas: 1 },
        { name: 'vad', prefix: '/vad', model: '/v2/models/vad', routes: ['POST /vad/segments'], docs: '/vad/docs', replicas: 1 },
      ],
    });
    expect((await fetch(`${server.url}/vad/segments`, { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: readFileSync(join(ROOT, 'functions/vad/test/speech.wav')) })).status).toBe(200);
    expect(await (await fetch(`${server.url}/v2/health/ready`)).json()).toEqual({ ready: true });
    expect(await errorOf(await fetch(`${server.url}/nowhere`))).toEqual({
      status: 404,
      error: 'no route at the gateway for this path; the functions are at /digits/, /iris/, /vad/ (GET / lists them); add one with npx modelfn new <name>',
    });
    expect(await errorOf(await fetch(`${server.url}/v2/models/nope/ready`))).toEqual({ status: 404, error: "unknown model 'nope'; GET / lists the functions" });
    const redirect = await fetch(`${server.url}/iris?x=1`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/iris/?x=1');
    // /iris/ is the function: its entry for clients, its docs for browsers; a trailing slash changes no route.
    expect(await (await fetch(`${server.url}/iris/`)).json()).toEqual({ name: 'iris', prefix: '/iris', model: '/v2/models/iris', predict: '/iris/predict', routes: ['POST /iris/species'], docs: '/iris/docs', replicas: 1, state: 'ready' });
    const page = await fetch(`${server.url}/iris/`, { headers: { Accept: 'text/html' }, redirect: 'manual' });
    expect([page.status, page.headers.get('location')]).toEqual([302, '/iris/docs']);
    expect((await fetch(`${server.url}/iris/predict/`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
    expect((await fetch(`${server.url}/iris/docs/`)).status).toBe(200);
  });

  it('reaches every route of the shared route table', async () => {
    for (const route of gatewayRoutes(server.slots().map((s) => s.fn))) {
      const path = route.kind === 'prefix' ? `${route.path}v2/health/live`.replace(`/v2/models/${route.fn}/v2/health/live`, `/v2/models/${route.fn}/ready`) : route.path;
      const res = await fetch(`${server.url}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(route.kind === 'redirect' ? 308 : 200);
    }
  });

  it('streams request bodies through to custom routes, and applies each function\'s limits', async () => {
    const species = await fetch(`${server.url}/iris/species`, postJson({ flowers: [[6.7, 3.0, 5.2, 2.3]] }, { 'X-Request-Id': 'embedded-1' }));
    expect(species.headers.get('x-request-id')).toBe('embedded-1');
    expect(((await species.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const big = await errorOf(await fetch(`${server.url}/iris/predict`, postJson('x'.repeat(11 * 1024 * 1024))));
    expect(big.status).toBe(413);
  });
});

describe('embedded mode with a broken function', () => {
  it('reports it, answers 503 JSON for it, and serves the others', async () => {
    const dir = join(scratch, 'mixed');
    cpSync(join(ROOT, 'functions/iris'), join(dir, 'iris'), { recursive: true });
    symlinkSync(join(ROOT, 'runtime'), join(scratch, 'runtime'));
    mkdirSync(join(dir, 'corrupt'));
    writeFileSync(join(dir, 'corrupt/model.onnx'), 'not a model');
    mkdirSync(join(dir, 'baddecl'));
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'baddecl/model.onnx'));
    writeFileSync(join(dir, 'baddecl/function.ts'), 'export default { replicas: -1 };\n');
    mkdirSync(join(dir, 'typo'));
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'typo/model.onnx'));
    writeFileSync(join(dir, 'typo/function.ts'), 'export default {\n  description: "no end",\n');
    const logger = memoryLogger();
    const server = await startEmbedded({ functionsDir: dir, config: testConfig({ PORT: '0' }), logger });
    try {
      const corrupt = await errorOf(await fetch(`${server.url}/corrupt/predict`, postJson({ instances: [[1]] })));
      expect(corrupt.status).toBe(503);
      expect(corrupt.error).toMatch(/model 'corrupt' failed to load: .*not a valid ONNX model/);
      expect((await errorOf(await fetch(`${server.url}/v2/models/corrupt/ready`))).status).toBe(503);
      const baddecl = await errorOf(await fetch(`${server.url}/baddecl/v2/health/ready`));
      expect(baddecl).toEqual({ status: 503, error: expect.stringMatching(/function 'baddecl' failed to load: .*replicas/) });
      expect((await fetch(`${server.url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
      expect(logger.lines.filter((l) => l.msg === 'function failed to load').map((l) => l.fn).sort()).toEqual(['baddecl', 'corrupt', 'typo']);
      // A syntax error keeps its line and column: in the log, the 503 answer and GET /.
      const typo = await errorOf(await fetch(`${server.url}/typo/predict`, postJson({ instances: [[1]] })));
      expect(typo.status).toBe(503);
      expect(typo.error).toMatch(/^function 'typo' failed to load: \S*typo\/function\.ts:2:\d+: cannot be loaded: \S.*/);
      expect(logger.lines.find((l) => l.fn === 'typo')!.error).toMatch(/typo\/function\.ts:2:\d+: cannot be loaded: \S/);
      const index = (await (await fetch(`${server.url}/`)).json()) as { functions: { name: string; error?: string; predict?: string }[] };
      expect(index.functions.find((f) => f.name === 'typo')).toMatchObject({ error: typo.error });
      expect(index.functions.find((f) => f.name === 'corrupt')!.predict).toBeUndefined();
      // The live view's first paint counts replicas as its refresh does: none of the one declared.
      const page = await (await fetch(`${server.url}/`, { headers: { Accept: 'text/html' } })).text();
      for (const name of ['typo', 'corrupt']) {
        expect(page, name).toMatch(new RegExp(`<tr data-live="${name}"[^>]*data-replicas="1"[\\s\\S]*?<td data-field="replicas">0 of 1</td>`));
      }
      expect(page).toMatch(/<tr data-live="iris"[\s\S]*?<td data-field="replicas">1<\/td>/);
      // A function's own root is its entry of GET /, the reason included, with its state, and 503 like its other routes.
      for (const name of ['typo', 'corrupt']) {
        const root = await fetch(`${server.url}/${name}/`);
        expect(root.status, name).toBe(503);
        const entry = index.functions.find((f) => f.name === name)!;
        expect(entry.error, name).toMatch(new RegExp(`^(function|model) '${name}' failed to load: `));
        expect(await root.json()).toEqual({ ...entry, state: 'failed' });
      }
      // Its docs page says why, and its live figures carry the state and the reason.
      const docs = await fetch(`${server.url}/typo/docs`);
      expect(docs.status).toBe(503);
      expect(await docs.text()).toContain('typo/function.ts:2:');
      expect(await (await fetch(`${server.url}/typo/stats`)).json()).toMatchObject({ name: 'typo', state: 'failed', reason: expect.stringContaining('typo/function.ts:2:') });
      expect(await (await fetch(`${server.url}/corrupt/stats`)).json()).toMatchObject({ name: 'corrupt', state: 'failed', reason: expect.stringContaining('not a valid ONNX model') });
    } finally {
      await server.shutdown();
    }
  });
});

describe('npm start follows the functions folder', () => {
  it('serves a function added while it runs, forgets one removed, and retries one that failed when its folder changes', async () => {
    const dir = join(scratch, 'followed');
    mkdirSync(join(dir, 'first'), { recursive: true });
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'first/model.onnx'));
    const logger = memoryLogger();
    const server = await startEmbedded({ functionsDir: dir, config: testConfig({ PORT: '0' }), logger });
    const names = async () => ((await (await fetch(`${server.url}/`)).json()) as { functions: { name: string }[] }).functions.map((f) => f.name);
    const until = async (what: string, ok: () => Promise<boolean>) => {
      const deadline = Date.now() + 15_000;
      while (!(await ok())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(logger.lines.slice(-5))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      const body = { instances: [[5.1, 3.5, 1.4, 0.2]] };
      expect((await errorOf(await fetch(`${server.url}/second/predict`, postJson(body)))).error).toBe(
        'no route at the gateway for this path; the functions are at /first/ (GET / lists them); add one with npx modelfn new <name>',
      );
      // Added: as `modelfn new` or a copy does, the folder first, then its files.
      mkdirSync(join(dir, 'second'));
      copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'second/model.onnx'));
      await until('second to be served', async () => (await fetch(`${server.url}/second/predict`, postJson(body))).status === 200);
      expect(await names()).toEqual(['first', 'second']);
      // Removed: gone from GET / and the routes.
      rmSync(join(dir, 'first'), { recursive: true });
      await until('first to be forgotten', async () => (await names()).join() === 'second');
      expect((await fetch(`${server.url}/first/predict`, postJson(body))).status).toBe(404);
      // Broken, then fixed: retried without a restart.
      mkdirSync(join(dir, 'third'));
      writeFileSync(join(dir, 'third/model.onnx'), 'not a model');
      await until('third to fail', async () => (await fetch(`${server.url}/third/predict`, postJson(body))).status === 503);
      copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'third/model.onnx'));
      await until('third to be retried', async () => (await fetch(`${server.url}/third/predict`, postJson(body))).status === 200);
      expect(logger.lines.filter((l) => l.msg === 'function added' || l.msg === 'function removed').map((l) => `${l.msg} ${l.fn}`))
        .toEqual(expect.arrayContaining(['function added second', 'function removed first', 'function added third']));
    } finally {
      await server.shutdown();
    }
  });
});

describe('watch mode (npm run dev)', () => {
  it('reloads a function when its files change', async () => {
    const dir = join(scratch, 'watched');
    mkdirSync(join(dir, 'hello'), { recursive: true });
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'hello/model.onnx'));
    writeFileSync(join(dir, 'hello/function.ts'), "export default { routes(app) { app.get('/greeting', (c) => c.json({ text: 'one' })); } };\n");
    const server = await startEmbedded({ functionsDir: dir, config: testConfig({ PORT: '0' }), logger: memoryLogger(), watch: true });
    try {
      expect(await (await fetch(`${server.url}/hello/greeting`)).json()).toEqual({ text: 'one' });
      writeFileSync(join(dir, 'hello/function.ts'), "export default { routes(app) { app.get('/greeting', (c) => c.json({ text: 'two' })); } };\n");
      const deadline = Date.now() + 10_000;
      let text = 'one';
      while (text !== 'two' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        text = ((await (await fetch(`${server.url}/hello/greeting`)).json()) as { text: string }).text;
      }
      expect(text).toBe('two');
      // A deleted folder disappears from GET / and its routes.
      rmSync(join(dir, 'hello'), { recursive: true });
      const gone = Date.now() + 10_000;
      while (((await (await fetch(`${server.url}/`)).json()) as { functions: unknown[] }).functions.length && Date.now() < gone) await new Promise((r) => setTimeout(r, 100));
      expect(await (await fetch(`${server.url}/`)).json()).toMatchObject({ functions: [] });
      expect((await fetch(`${server.url}/hello/greeting`)).status).toBe(404);
    } finally {
      await server.shutdown();
    }
  });
});

describe('a reload under load (npm start, npm run dev)', () => {
  it('fails no request: the old model serves what it has before it is released', async () => {
    const dir = join(scratch, 'reloaded');
    mkdirSync(join(dir, 'hello'), { recursive: true });
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'hello/model.onnx'));
    const server = await startEmbedded({ functionsDir: dir, config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    try {
      const statuses = new Map<number, number>();
      let stop = false;
      const clients = Array.from({ length: 8 }, async () => {
        while (!stop) {
          const res = await fetch(`${server.url}/hello/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
          await res.arrayBuffer();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        }
      });
      for (let i = 0; i < 3; i++) await server.reload(join(dir, 'hello'));
      stop = true;
      await Promise.all(clients);
      expect([...statuses.keys()]).toEqual([200]);
      expect(statuses.get(200)).toBeGreaterThan(10);
    } finally {
      await server.shutdown();
    }
  });
});
