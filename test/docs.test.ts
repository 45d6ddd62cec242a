/**
 * Documentation that serves itself: every function's OpenAPI 3.1 document and docs page, and the
 * gateway's root page for browsers, in embedded mode and at a real nginx.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_PAGE } from '../builder/policy.ts';
import { discoverFunctions } from '../builder/functions.ts';
import { runBuild } from '../build.ts';
import { createFunctionApp } from '../runtime/http/app.ts';
import { readConfig } from '../runtime/core/config.ts';
import { VERSION } from '../runtime/core/version.ts';
import { cardOf, describeFunctions } from '../runtime/pages/describe.ts';
import { resolveFunction } from '../runtime/function/discover.ts';
import { startEmbedded, type EmbeddedServer } from '../runtime/gateway/embedded.ts';
import { FunctionHost } from '../runtime/function/host.ts';
import { gatewayPage } from '../runtime/pages/ui.ts';
import { ROOT, errorOf, memoryLogger, openDeclared, postJson, testConfig } from '../runtime/testing/index.ts';
import { freePort, gatewayNginxImage } from './docker.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-docs-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

type Doc = {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, any>>;
};

/** A command's standard output; rejects with its standard error when it fails. */
const run = (command: string, args: string[]) => new Promise<string>((done, fail) => {
  execFile(command, args, { timeout: 60_000 }, (err, stdout, stderr) => (err ? fail(new Error(`${command}: ${stderr || err.message}`)) : done(stdout)));
});

async function validate(doc: unknown): Promise<void> {
  const result = await new Validator().validate(doc as Parameters<Validator['validate']>[0]);
  expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
  expect(result.valid).toBe(true);
}

describe('OpenAPI documents and docs pages, through the gateway', () => {
  let server: EmbeddedServer;
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
  });
  afterAll(() => server.shutdown());
  const get = async (path: string) => (await fetch(`${server.url}${path}`)).json() as Promise<any>;

  for (const name of ['digits', 'iris', 'vad']) {
    it(`${name}: a valid OpenAPI 3.1 document carrying the model's datatypes and shapes, whose example works`, async () => {
      const doc = (await get(`/${name}/openapi.json`)) as Doc;
      await validate(doc);
      expect(doc.openapi).toBe('3.1.0');
      expect(doc.servers).toEqual([{ url: `/${name}` }]);
      for (const path of [`/v2/models/${name}/infer`, `/v2/models/${name}`, `/v2/models/${name}/ready`, '/v2/health/ready', '/metrics']) {
        expect(Object.keys(doc.paths)).toContain(path);
      }
      const meta = await get(`/v2/models/${name}`);
      const infer = doc.paths[`/v2/models/${name}/infer`].post;
      const body = infer.requestBody.content['application/json'];
      for (const input of meta.inputs) {
        const schema = body.schema.properties.inputs.items.oneOf.find((s: any) => s.properties.name.const === input.name);
        expect(schema.properties.datatype.const).toBe(input.datatype);
        expect(schema.description).toContain(`shape [${input.shape.join(', ')}]`);
      }
      const outputs = infer.responses['200'].content['application/json'].schema.properties.outputs.items.oneOf;
      expect(outputs.map((s: any) => [s.properties.name.const, s.properties.datatype.const])).toEqual(meta.outputs.map((o: any) => [o.name, o.datatype]));
      expect(doc.paths[`/v2/models/${name}`].get.responses['200'].content['application/json'].example).toEqual(meta);
      // The documented example is a request the function answers, at the documented server.
      const res = await fetch(`${server.url}${doc.servers[0].url}/v2/models/${name}/infer`, postJson(body.example));
      expect(res.status).toBe(200);
      // /predict is documented for models with one input only, with the same example as instances.
      expect('/predict' in doc.paths).toBe(meta.inputs.length === 1);
      if (meta.inputs.length === 1) {
        const predict = doc.paths['/predict'].post.requestBody.content['application/json'].example;
        expect((await fetch(`${server.url}/${name}/predict`, postJson(predict))).status).toBe(200);
      }
    });
  }

  it("iris documents its /species route, and the documented answer is the route's answer", async () => {
    const doc = (await get('/iris/openapi.json')) as Doc;
    const species = doc.paths['/species'].post;
    expect(species.summary).toBe('Species of flowers, by their measurements');
    expect(species.tags).toEqual(['function']);
    const example = species.requestBody.content['application/json'].example;
    const answer = await (await fetch(`${server.url}/iris/species`, postJson(example))).json();
    expect(answer).toEqual(species.responses['200'].content['application/json'].example);
  });

  it('vad documents /segments as an audio/wav upload with its query parameters', async () => {
    const doc = (await get('/vad/openapi.json')) as Doc;
    const segments = doc.paths['/segments'].post;
    expect(Object.keys(segments.requestBody.content)).toEqual(['audio/wav']);
    expect(segments.parameters.map((p: any) => [p.name, p.in])).toEqual([['threshold', 'query'], ['min_silence_ms', 'query'], ['min_speech_ms', 'query']]);
    const wav = readFileSync(join(ROOT, 'functions/vad/test/speech.wav'));
    const res = await fetch(`${server.url}/vad/segments`, { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: wav });
    expect(await res.json()).toEqual(segments.responses['200'].content['application/json'].example);
  });

  it('serves a self-contained, interactive docs page for each function', async () => {
    const res = await fetch(`${server.url}/iris/docs`);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('<script>');
    expect(html).toContain('openapi.json');
    // Nothing is fetched from anywhere else: no CDN, no external asset (the snippets name this server, as text).
    expect(html.replace(/<pre class="snippet"[^>]*>[^<]*<\/pre>/g, '')).not.toMatch(/https?:\/\//);
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="(?!data:)/);
  });

  it('shows the class labels beside the output they name, and the model file\'s facts with its load and warm-up times', async () => {
    const html = await (await fetch(`${server.url}/iris/docs`)).text();
    const text = html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
    expect(text).toContain('output probabilities FP32 [-1, 3] 0 setosa 1 versicolor 2 virginica');
    expect(text).toContain('output label INT64 [-1]');
    expect(text).toMatch(/file model\.onnx, 372 B opset ai\.onnx 17 IR version 8 producer modelfn-scripts onnxruntime 1\.\d+\.\d+ execution provider CPU loaded in [\d.]+ ms warm-up [\d.]+ ms/);
    const doc = (await get('/vad/openapi.json')) as Doc & { 'x-modelfn': { model: Record<string, unknown> } };
    expect(doc['x-modelfn'].model).toMatchObject({ file: 'model.onnx', producer: 'spox', opsets: { '': 16 }, executionProvider: 'CPU' });
  });

  it("draws digits' example as the 8×8 picture its 64 numbers are, beside them; iris's 4 measurements are no picture", async () => {
    const html = await (await fetch(`${server.url}/digits/docs`)).text();
    const pictures = [...html.matchAll(/<figure class="picture"><svg viewBox="0 0 8 8"[^>]*>(.*?)<\/svg>/g)].map((m) => m[1]);
    // Beside each form that sends the image: /predict and both inference routes.
    expect(pictures.length).toBe(3);
    const greys = [...pictures[0].matchAll(/fill="rgb\((\d+),/g)].map((m) => Number(m[1]));
    expect(greys).toHaveLength(64);
    const doc = (await get('/digits/openapi.json')) as Doc;
    const pixels = doc.paths['/predict'].post.requestBody.content['application/json'].example.instances[0].flat() as number[];
    // Ink is dark: the largest value is black, the smallest white, cell by cell in reading order.
    expect(greys[pixels.indexOf(Math.max(...pixels))]).toBe(0);
    expect(greys[pixels.indexOf(Math.min(...pixels))]).toBe(255);
    expect(await (await fetch(`${server.url}/iris/docs`)).text()).not.toContain('class="picture"');
  });

  it('shows an example answer for every route of a function, each the shape the route really answers', async () => {
    const html = await (await fetch(`${server.url}/iris/docs`)).text();
    const operations = [...html.matchAll(/<details data-operation="([^"]+)"[^]*?<\/details>/g)];
    expect(operations.length).toBeGreaterThan(10);
    for (const [section, id] of operations) expect(section, id).toContain('An answer looks like:');
    const doc = (await get('/iris/openapi.json')) as Doc;
    const example = (path: string, type = 'application/json') => doc.paths[path].get.responses['200'].content[type].example;
    expect(await get('/v2')).toEqual(example('/v2'));
    const stats = await get('/iris/stats');
    expect(Object.keys(example('/stats')).sort()).toEqual(Object.keys(stats).filter((k) => k !== 'reason').sort());
    const metrics = await (await fetch(`${server.url}/iris/metrics`)).text();
    const documented = (example('/metrics', 'text/plain') as string).split('\n');
    for (const line of documented.filter((l) => l.startsWith('#'))) expect(metrics).toContain(line);
    const labels = (line: string) => [...line.matchAll(/(\w+)="/g)].map((m) => m[1]);
    expect(labels(documented[2])).toEqual(labels(metrics.split('\n').find((l) => l.startsWith('modelfn_http_requests_total{'))!));
  });

  for (const name of ['digits', 'iris']) {
    it(`${name}: documents the answer to each inference example, the answer the routes give`, async () => {
      const doc = (await get(`/${name}/openapi.json`)) as Doc;
      for (const [path, route] of [['/predict', `/${name}/predict`], [`/v2/models/${name}/infer`, `/v2/models/${name}/infer`]]) {
        const op = doc.paths[path].post;
        const documented = op.responses['200'].content['application/json'].example;
        expect(documented, path).toBeDefined();
        const live = await (await fetch(`${server.url}${route}`, postJson(op.requestBody.content['application/json'].example))).json();
        expect(live, path).toEqual(documented);
      }
      // The docs page shows it under the form.
      const html = await (await fetch(`${server.url}/${name}/docs`)).text();
      expect(html.match(/An answer looks like:/g)!.length).toBeGreaterThanOrEqual(3);
    });
  }

  it('gives each request as curl and Python commands that work as copied, at the address the page was asked from', async () => {
    const html = await (await fetch(`${server.url}/iris/docs`)).text();
    const unescape = (text: string) => text.replace(/&#(\d+);/g, (_, code) => String.fromCharCode(Number(code)));
    const blocks = (kind: string) => [...html.matchAll(new RegExp(`<pre class="snippet" data-snippet="${kind}">([^<]*)</pre>`, 'g'))].map((m) => unescape(m[1]));
    const curls = blocks('curl');
    const pythons = blocks('python');
    expect(curls.length).toBeGreaterThan(5);
    expect(pythons).toHaveLength(curls.length);
    const predictCurl = curls.find((c) => c.includes('/iris/predict'))!;
    expect(predictCurl.startsWith(`curl -s '${server.url}/iris/predict' -H 'Content-Type: application/json' -d '`)).toBe(true);
    const doc = (await get('/iris/openapi.json')) as Doc;
    const documented = doc.paths['/predict'].post.responses['200'].content['application/json'].example;
    // Run as a person would paste it, while this process serves (asynchronously: the server is in this process).
    expect(JSON.parse(await run('bash', ['-c', predictCurl]))).toEqual(documented);
    const predictPython = pythons.find((p) => p.includes('/iris/predict'))!;
    const python = ['/usr/bin/python3', '/usr/local/bin/python3'].find((p) => existsSync(p));
    if (python && spawnSync(python, ['-c', 'import requests']).status === 0) {
      const printed = await run(python, ['-c', predictPython.replace('print(answer.status_code, answer.json())', 'import json; print(json.dumps(answer.json()))')]);
      expect(JSON.parse(printed)).toEqual(documented);
    } else {
      process.stdout.write('\n[not run] the Python snippet: no python3 with requests on this machine\n');
    }
  });
});

describe('OpenAPI documents of any function', () => {
  it("documents custom routes with no routeDocs too, path parameters included, and a custom /predict replaces the default's", async () => {
    const { app } = await openDeclared(join(ROOT, 'functions/iris'), {
      name: 'custom',
      routes(app) {
        app.get('/items/:id', (c) => c.json({ id: c.req.param('id') }));
        app.post('/echo', async (c) => c.json(await c.req.json()));
        app.post('/predict', (c) => c.json({ mine: true }));
      },
    });
    const doc = (await (await app.request('/openapi.json')).json()) as Doc;
    await validate(doc);
    expect(doc.servers).toEqual([{ url: '/' }]);
    expect(doc.paths['/items/{id}'].get.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
    expect(Object.keys(doc.paths['/echo'].post.requestBody.content)).toEqual(['application/json']);
    expect(doc.paths['/predict'].post.tags).toEqual(['function']);
    expect(await (await app.request('/predict', postJson({ instances: [] }))).json()).toEqual({ mine: true });
  });

  it('answers 503 JSON for openapi.json until the model has loaded', async () => {
    const config = testConfig();
    const host = new FunctionHost(await resolveFunction(join(ROOT, 'functions/iris'), undefined, undefined, config));
    const { app } = createFunctionApp(host, { config });
    expect(await errorOf(await app.request('/openapi.json'))).toEqual({ status: 503, error: "model 'iris' is still loading" });
    // The docs page says why instead of a bare error, and what to do.
    const docs = await app.request('/docs');
    expect(docs.status).toBe(503);
    expect(docs.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await docs.text();
    expect(html).toContain("<pre class=\"failure\">model &#39;iris&#39; is still loading</pre>");
    expect(html).toContain('npx modelfn list');
    host.setFailed('functions/iris/model.onnx: not a valid ONNX model');
    expect(await (await app.request('/docs')).text()).toContain('failed to load: functions/iris/model.onnx: not a valid ONNX model');
  });

  it('refuses a routeDocs entry that does not name a method and a path', async () => {
    await expect(openDeclared(join(ROOT, 'functions/iris'), { routeDocs: { '/species': {} } })).rejects.toThrow("routeDocs./species: must be a method and a path, such as 'POST /species'");
  });
});

describe("the gateway's root page", () => {
  it('goes to browsers; API clients keep getting the JSON index (embedded mode)', async () => {
    const server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    try {
      // fetch asks for gzip as browsers do: the page comes compressed (and fetch decodes it).
      const page = await fetch(`${server.url}/`, { headers: { Accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('vary')).toBe('Accept, Accept-Encoding');
      expect(page.headers.get('content-encoding')).toBe('gzip');
      const html = await page.text();
      // Rendered on the server: every function's card and live row are in the HTML as served.
      for (const name of ['digits', 'iris', 'vad']) {
        expect(html).toContain(`<section class="card" id="fn-${name}" data-function="${name}" data-state="ready">`);
        expect(html).toMatch(new RegExp(`<tr data-live="${name}"[^>]*>[\\s\\S]*?class="state state-ready">ready<`));
      }
      for (const accept of ['*/*', 'application/json']) {
        const index = await fetch(`${server.url}/`, { headers: { Accept: accept } });
        expect(index.headers.get('vary')).toBe('Accept, Accept-Encoding');
        expect(((await index.json()) as { functions: { name: string; docs: string }[] }).functions.map((f) => f.docs)).toEqual(['/digits/docs', '/iris/docs', '/vad/docs']);
      }
    } finally {
      await server.shutdown();
    }
  });

  // The build's gateway folder, as `npm run build` writes it (here into a scratch folder).
  const built = join(scratch, 'built');
  const gatewayDir = join(built, 'dist', GATEWAY_PAGE.dir);
  beforeAll(async () => {
    const code = await runBuild({ functionsDir: join(ROOT, 'functions'), outDir: join(built, 'dist'), root: built, images: false, check: false, log: () => {} });
    expect(code).toBe(0);
  });

  it('behind nginx, has the state of each function looked up as the page goes out, but for one that scales (a page view never wakes one) or takes API keys', async () => {
    const { functions } = await discoverFunctions(join(ROOT, 'functions'), readConfig({}));
    const [iris] = (await describeFunctions(functions.filter((fn) => fn.name === 'iris'))).map((fn) => cardOf(fn));
    const page = gatewayPage([iris, { ...iris, name: 'sleepy', prefix: '/sleepy', scales: true }, { ...iris, name: 'keyed', prefix: '/keyed', keyed: true }], VERSION, { ssi: true });
    expect(page).toContain('<!--# include virtual="/iris/stats" set="modelfn_stats_iris" -->');
    expect(page).not.toContain('/sleepy/stats');
    expect(page).not.toContain('/keyed/stats');
    expect(page).toMatch(/<tr data-live="sleepy"[^]*?<span data-field="state" class="state state-…">…<\/span>/);
  });

  it('is the page nginx serves: the build writes runtime/pages/ui.ts\'s page into the gateway image\'s context, and nothing commits a copy', async () => {
    const file = readFileSync(join(gatewayDir, GATEWAY_PAGE.file), 'utf8');
    const { functions } = await discoverFunctions(join(ROOT, 'functions'), readConfig({}));
    expect(file.slice(file.indexOf('\n') + 1)).toBe(gatewayPage((await describeFunctions(functions)).map((fn) => cardOf(fn)), VERSION, { ssi: true }));
    expect(readFileSync(join(gatewayDir, 'nginx.conf'), 'utf8')).toBe(readFileSync(join(ROOT, 'nginx/nginx.conf'), 'utf8'));
    expect(readFileSync(join(ROOT, 'nginx/Dockerfile'), 'utf8')).toContain(`COPY index.html ${GATEWAY_PAGE.image}`);
    expect(execFileSync('git', ['ls-files', '*.html'], { cwd: ROOT, encoding: 'utf8' })).toBe('');
  });

  it('nginx answers browsers with the page and API clients with the JSON index', async (ctx) => {
    const image = gatewayNginxImage('nginx serving the root page');
    if (!image) return ctx.skip();
    // The generated config and page, in the gateway's nginx, published on a free loopback port.
    const port = await freePort();
    const name = `modelfn-docs-${process.pid}`;
    execFileSync('docker', ['run', '-d', '--name', name, '-p', `127.0.0.1:${port}:8080`,
      '-v', `${join(gatewayDir, 'nginx.conf')}:/etc/nginx/nginx.conf:ro`, '-v', `${join(gatewayDir, GATEWAY_PAGE.file)}:${GATEWAY_PAGE.image}:ro`, image], { stdio: 'ignore' });
    try {
      const url = `http://127.0.0.1:${port}`;
      let page: Response | undefined;
      for (let i = 0; i < 50 && !page; i++) {
        page = await fetch(`${url}/`, { headers: { Accept: 'text/html' } }).catch(() => new Promise<undefined>((r) => setTimeout(r, 100)));
      }
      expect(page, 'nginx did not answer').toBeDefined();
      expect(page!.status).toBe(200);
      expect(page!.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page!.headers.get('vary')).toBe('Accept');
      expect(page!.headers.get('x-request-id')).toBeTruthy();
      // The built page, with each function's state filled in by nginx as it went out: no
      // function runs behind this nginx, so each is unavailable, already in the first paint.
      const served = await page!.text();
      const file = readFileSync(join(gatewayDir, GATEWAY_PAGE.file), 'utf8');
      expect(served).not.toContain('<!--#');
      expect(served.split('\n')[0]).toBe(file.split('\n')[0]);
      for (const name of ['digits', 'iris', 'vad']) {
        expect(served).toMatch(new RegExp(`<tr data-live="${name}"[^]*?<span data-field="state" class="state state-unavailable">unavailable</span>`));
      }
      const index = await fetch(`${url}/`);
      expect(index.headers.get('content-type')).toBe('application/json');
      expect(index.headers.get('vary')).toBe('Accept');
      const listed = ((await index.json()) as { functions: { name: string; predict?: string; routes?: string[] }[] }).functions;
      expect(listed.map((f) => f.name)).toEqual(['digits', 'iris', 'vad']);
      // The build read each model: only routes that work are advertised (vad has three inputs).
      expect(listed.map((f) => [f.predict, f.routes])).toEqual([['/digits/predict', undefined], ['/iris/predict', ['POST /iris/species']], [undefined, ['POST /vad/segments']]]);
      // The page's own location is internal: asked for directly, it is the gateway's JSON 404,
      // labelled JSON whatever the path's extension.
      for (const path of ['/_modelfn/page', '/_modelfn/index.html', '/nowhere.html']) expect((await errorOf(await fetch(`${url}${path}`))).status).toBe(404);
    } finally {
      execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
    }
  });
});
