import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from './embedded.ts';
import { functionIndex, gatewayRoutes } from './routes.ts';
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
    const functions = server.slots().map((s) => s.host!.fn);
    expect(await (await fetch(`${server.url}/`)).json()).toEqual(functionIndex(functions));
    expect(await (await fetch(`${server.url}/v2/health/ready`)).json()).toEqual({ ready: true });
    expect(await errorOf(await fetch(`${server.url}/nowhere`))).toEqual({ status: 404, error: 'no route at the gateway for this path; GET / lists the functions' });
    expect(await errorOf(await fetch(`${server.url}/v2/models/nope/ready`))).toEqual({ status: 404, error: "unknown model 'nope'; GET / lists the functions" });
    const redirect = await fetch(`${server.url}/iris?x=1`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/iris/?x=1');
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
      expect(logger.lines.filter((l) => l.msg === 'function failed to load').map((l) => l.fn).sort()).toEqual(['baddecl', 'corrupt']);
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
    } finally {
      await server.shutdown();
    }
  });
});
