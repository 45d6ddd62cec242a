/**
 * The whole stack on the real Docker engine: build, images, compose up, every function through
 * nginx on 127.0.0.1, replicas, a killed replica, a broken model, and down.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '../../build.ts';
import { buildFunctionImage, functionImage, gatewayImage } from '../../builder/docker/images.ts';
import { compose, composeRun, stackDown, stackUp, waitFor } from '../../builder/docker/compose.ts';
import { soak } from '../../bench/soak.ts';
import { GATEWAY_PAGE, UPSTREAM_KEEPALIVE_TIMEOUT_MS } from '../../builder/policy.ts';
import { FUNCTION_KEEPALIVE_TIMEOUT_MS } from '../../runtime/core/config.ts';
import { FIXTURES, conformanceSuite, ROOT, errorOf, postJson } from '../../runtime/testing/index.ts';
import { chromiumAvailable, openBrowser, screenshot, tryGatewayPage, waitForLiveRow } from '../browser.ts';
import { answersPerReplica, docker, dockerAvailable, freePort, projectLeftovers } from '../docker.ts';

const available = dockerAvailable('compose stack (test/e2e/compose.test.ts)');
const FUNCTIONS = ['digits', 'iris', 'vad'];
/** A fourth function, only in this test's copy: API keys and a tight rate limit. */
const LIMITED = 'limited';
/** A fifth, zero code: a model whose StringNormalizer needs the en_US.UTF-8 locale in the image. */
const LOCALE = 'normalizer';
const API_KEY = 'e2e-0123456789abcdef';

describe.runIf(available)('the compose stack on the real Docker engine', () => {
  const tag = `e2e-${process.pid}`;
  const project = `modelfn-e2e-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), 'modelfn-e2e-'));
  const buildLog: string[] = [];
  let url = '';
  let env: Record<string, string> = {};
  let down = false;
  const stack = () => ({ root, project, env });
  const containers = (service: string) =>
    docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`]).trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    // The repository's functions, with digits declared at two replicas.
    cpSync(join(ROOT, 'functions'), join(root, 'functions'), { recursive: true });
    symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
    writeFileSync(join(root, 'functions/digits/function.ts'), 'export default { replicas: 2 };\n');
    mkdirSync(join(root, 'functions', LIMITED));
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions', LIMITED, 'model.onnx'));
    writeFileSync(join(root, 'functions', LIMITED, 'function.ts'), "export default { auth: { apiKeys: 'limited-keys' }, rateLimit: { requestsPerSecond: 1, burst: 2 } };\n");
    mkdirSync(join(root, 'functions', LOCALE));
    cpSync(join(FIXTURES, 'normalizer.onnx'), join(root, 'functions', LOCALE, 'model.onnx'));
    mkdirSync(join(root, 'secrets'));
    writeFileSync(join(root, 'secrets/limited-keys'), `${API_KEY}\n`, { mode: 0o644 });
    // iris at two replicas too, for the rolling restart and the soak.
    writeFileSync(join(root, 'functions/iris/function.ts'), readFileSync(join(ROOT, 'functions/iris/function.ts'), 'utf8').replace('defineFunction({', 'defineFunction({\n  replicas: 2,'));
    env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
    Object.assign(process.env, env);
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => buildLog.push(l) });
    expect(code, buildLog.join('\n')).toBe(0);
    url = await stackUp(stack(), [...FUNCTIONS, LIMITED, LOCALE]);
  }, 600_000);

  afterAll(async () => {
    if (!down) await stackDown(stack()).catch(() => {});
    for (const image of [...[...FUNCTIONS, LIMITED, LOCALE].map((f) => functionImage(f, tag)), gatewayImage(tag)]) {
      try {
        docker(['rmi', '-f', image]);
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('shows build progress per function and a size table', () => {
    const text = buildLog.join('\n');
    for (const f of FUNCTIONS) expect(text).toMatch(new RegExp(`✓ ${f}\\s+/${f}\\s+bundled`));
    expect(text).toMatch(/function\s+bundle\s+source map\s+model/);
    expect(text).toContain(`image ${gatewayImage(tag)}`);
  });

  it('generates an nginx config that passes nginx -t and a compose file that passes config validation', async () => {
    const out = execFileSync('docker', ['run', '--rm', '--entrypoint', 'nginx', gatewayImage(tag), '-t'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    expect(out).toBe('');
    await expect(composeRun(stack(), ['config', '-q'])).resolves.toBeDefined();
    expect(compose().length).toBeGreaterThan(0);
  });

  it('answers the gateway routes itself: health, server metadata and the function list', async () => {
    expect(await (await fetch(`${url}/v2/health/live`)).json()).toEqual({ live: true });
    expect((await fetch(`${url}/v2/health/ready`)).status).toBe(200);
    const index = (await (await fetch(`${url}/`)).json()) as { functions: { name: string; prefix: string; replicas: number }[] };
    expect(index.functions.map((f) => f.name)).toEqual([...FUNCTIONS, LIMITED, LOCALE].sort());
    expect(index.functions.find((f) => f.name === 'digits')!.replicas).toBe(2);
    const missing = await fetch(`${url}/nowhere`);
    expect(missing.headers.get('server')).toBe('nginx');
    expect((await errorOf(missing)).status).toBe(404);
  });

  for (const name of FUNCTIONS) {
    conformanceSuite(`${name} through nginx`, async () => ({
      name,
      // The gateway has no /metrics of its own: each function's is under its prefix.
      request: (path, init) => fetch(path === '/metrics' ? `${url}/${name}/metrics` : `${url}${path}`, init),
      example: name === 'vad' ? { inputs: [
        { name: 'input', datatype: 'FP32', shape: [1, 576], data: new Array(576).fill(0) },
        { name: 'state', datatype: 'FP32', shape: [2, 1, 128], data: new Array(256).fill(0) },
        { name: 'sr', datatype: 'INT64', shape: [], data: [16000] },
      ] } : undefined,
    }));
  }

  it('serves a model that needs the en_US.UTF-8 locale from the runtime image (built from scratch)', async () => {
    const res = await fetch(`${url}/v2/models/${LOCALE}/infer`, postJson({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [4], data: ['The', 'quick', 'a', 'Fox'] }] }));
    expect(await res.json()).toEqual({ model_name: LOCALE, model_version: '1', outputs: [{ name: 'normalized', datatype: 'BYTES', shape: [2], data: ['QUICK', 'FOX'] }] });
  });

  it('starts a function from the compile cache its image build filled, on both threads, read-only', async () => {
    const id = docker(['run', '-d', '--read-only', '--network', 'none', '-e', 'NODE_DEBUG_NATIVE=COMPILE_CACHE', functionImage('iris', tag)]).trim();
    try {
      // Both streams: the function logs to stdout, Node's compile cache reports to stderr.
      const logs = () => {
        const out = spawnSync('docker', ['logs', id], { encoding: 'utf8' });
        return `${out.stdout}${out.stderr}`;
      };
      await waitFor('iris listening', async () => logs().includes('"msg":"listening"') || 'not yet', 30_000);
      const text = logs();
      expect(text).toMatch(/V8 code cache for ESM file:\/\/\/app\/function\/main\.mjs was accepted/);
      expect(text).toMatch(/V8 code cache for ESM file:\/\/\/app\/function\/server-[A-Z0-9]+\.mjs was accepted/);
      expect(text).toMatch(/V8 code cache for ESM file:\/\/\/app\/function\/inference\.mjs was accepted/);
      expect(text).not.toMatch(/was rejected|Cannot create cache directory/);
      // The inference thread, started first, had created the model's session while the main thread loaded.
      expect(text).toMatch(/"msg":"model loaded".*"created_early":true/);
    } finally {
      docker(['rm', '-f', id]);
    }
  });

  it('serves the custom routes under their prefixes, passing the request id through', async () => {
    const species = await fetch(`${url}/iris/species`, postJson({ flowers: [[6.7, 3.0, 5.2, 2.3]] }, { 'X-Request-Id': 'e2e-trace' }));
    expect(species.headers.get('x-request-id')).toBe('e2e-trace');
    expect(((await species.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const wav = (await import('node:fs')).readFileSync(join(ROOT, 'functions/vad/test/speech.wav'));
    const segments = await fetch(`${url}/vad/segments`, { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: wav });
    expect(((await segments.json()) as { segments: unknown[] }).segments).toHaveLength(2);
    const digits = await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(0)] }));
    expect(digits.status).toBe(200);
    expect((await fetch(`${url}/iris`, { redirect: 'manual' })).status).toBe(308);
  });

  it('serves the root page to browsers and each function\'s OpenAPI document under its prefix', async () => {
    const page = await fetch(`${url}/`, { headers: { Accept: 'text/html' } });
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    // The built page, each function's state filled in by nginx from its /stats as it went out:
    // every function runs, so the first paint says ready, before any script.
    const served = await page.text();
    const built = readFileSync(join(root, 'dist', GATEWAY_PAGE.dir, GATEWAY_PAGE.file), 'utf8');
    expect(served.split('\n')[0]).toBe(built.split('\n')[0]);
    expect(served).not.toContain('<!--#');
    for (const name of ['digits', 'iris', 'vad']) {
      expect(served, name).toMatch(new RegExp(`<tr data-live="${name}"[^]*?<span data-field="state" class="state state-ready">ready</span>`));
    }
    const doc = (await (await fetch(`${url}/vad/openapi.json`)).json()) as { servers: { url: string }[]; paths: Record<string, unknown> };
    expect(doc.servers).toEqual([{ url: '/vad' }]);
    expect(Object.keys(doc.paths)).toContain('/segments');
    if (!chromiumAvailable('the root page at nginx in a browser')) return;
    const browser = await openBrowser();
    try {
      const { iris, digits, vad } = await tryGatewayPage(browser.page, url);
      expect(iris).toContain('"species": "virginica"');
      expect(digits).toContain('"label": 8');
      expect(vad).toMatch(/^200 OK/);
      // The live view adds up each function's replicas through Docker's DNS (MODELFN_PEERS).
      for (const name of ['digits', 'iris']) {
        const row = await waitForLiveRow(browser.page, name, (r) => r.state === 'ready' && r.replicas === '2' && Number(r.rps) > 0, 30_000);
        expect(row.p50).toMatch(/ ms$/);
      }
      expect((await waitForLiveRow(browser.page, 'vad', (r) => r.state === 'ready')).replicas).toBe('1');
      await screenshot(browser.page, 'gateway-page-nginx');
    } finally {
      await browser.close();
    }
  });

  it('asks for the API key from the secret file, and rate-limits per client at nginx with a JSON 429', async () => {
    const body = { instances: [[5.1, 3.5, 1.4, 0.2]] };
    const denied = await fetch(`${url}/${LIMITED}/predict`, postJson(body));
    expect(await errorOf(denied)).toEqual({ status: 401, error: 'this function needs an API key: send Authorization: Bearer <key>' });
    expect((await fetch(`${url}/v2/models/${LIMITED}/ready`)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 3000));
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await fetch(`${url}/${LIMITED}/predict`, postJson(body, { Authorization: `Bearer ${API_KEY}` })));
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
    const limited = answers.filter((a) => a.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(4);
    expect(limited[0].headers.get('retry-after')).toBe('1');
    expect(limited[0].headers.get('x-request-id')).toBeTruthy();
    expect(await errorOf(limited[0])).toEqual({ status: 429, error: 'too many requests; retry later' });
    for (const a of answers) expect(a.headers.get('x-frame-options')).toBe('DENY');
  });

  it('enforces the declared body limit at nginx with a JSON 413', async () => {
    const tooBig = await fetch(`${url}/iris/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'x'.repeat(10 * 1024 * 1024 + 1) });
    const err = await errorOf(tooBig);
    expect(err.status).toBe(413);
    expect(tooBig.headers.get('server')).toBe('nginx');
  });

  it('spreads requests over both replicas of a function', async () => {
    const replicas = containers('digits');
    expect(replicas).toHaveLength(2);
    for (let i = 0; i < 40; i++) expect((await fetch(`${url}/digits/v2/models/digits/ready`, { headers: { 'X-Request-Id': `spread-${i}` } })).status).toBe(200);
    const perReplica = await answersPerReplica(containers('gateway')[0], /^spread-\d+$/, 40);
    expect(perReplica.size).toBe(2);
    for (const [replica, n] of perReplica) expect(n, replica).toBeGreaterThan(5);
  });

  it('keeps answering when a replica is killed (kill -9) under load', async () => {
    const [victim] = containers('digits');
    const pid = docker(['inspect', '--format', '{{.State.Pid}}', victim]).trim();
    const statuses: number[] = [];
    let killed = false;
    const worker = async () => {
      for (let i = 0; i < 60; i++) {
        const res = await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(1)] }));
        statuses.push(res.status);
        await res.arrayBuffer();
        if (statuses.length === 40 && !killed) {
          killed = true;
          process.kill(Number(pid), 'SIGKILL');
        }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    expect(killed).toBe(true);
    process.stdout.write(`\n[figures] kill -9 of one replica under load: ${statuses.length} requests, ${statuses.filter((x) => x !== 200).length} failed\n`);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(statuses).toHaveLength(240);
    // The restart policy brings the replica back.
    await waitFor('the killed replica to be back', async () => containers('digits').length === 2 || 'one replica', 60_000);
  });

  it('holds a soak at 64 connections through nginx with zero errors and flat memory', { timeout: 120_000 }, async () => {
    const result = await soak(url, containers('iris'), 25, 64, join(root, 'wrk'));
    process.stdout.write(`\n[figures] soak: ${result.load.requests} requests at 64 connections in 25 s, ${result.load.errors} errors; memory ${result.memory.map((m) => `${m.warm.toFixed(1)} -> ${m.end.toFixed(1)} MiB`).join(', ')}\n`);
    expect(result.load.requests).toBeGreaterThan(1000);
    expect(result.load.errors, `errors: ${result.load.errorKinds}`).toBe(0);
    expect(result.memory).toHaveLength(2);
    for (const m of result.memory) expect(m.growth, `${m.container}: ${m.warm.toFixed(1)} -> ${m.end.toFixed(1)} MiB`).toBeLessThan(0.1);
  });

  it('loses no request during a rolling restart under load (graceful drain)', { timeout: 180_000 }, async () => {
    const replicas = containers('iris');
    const statuses: number[] = [];
    let restarting = true;
    const worker = async () => {
      while (restarting) {
        const res = await fetch(`${url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
        statuses.push(res.status);
        await res.arrayBuffer();
      }
    };
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    for (const id of replicas) {
      // docker restart: SIGTERM, the replica drains, then starts again; wait until it is healthy.
      docker(['restart', '-t', '30', id]);
      await waitFor(`${id} healthy`, async () => docker(['inspect', '--format', '{{.State.Health.Status}}', id]).trim() === 'healthy' || 'starting', 60_000);
    }
    restarting = false;
    await load;
    process.stdout.write(`\n[figures] rolling restart of 2 replicas under load: ${statuses.length} requests, ${statuses.filter((x) => x !== 200).length} failed\n`);
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('loses no request after an idle gap longer than every keep-alive timeout', { timeout: 180_000 }, async () => {
    const burst = async () => {
      const statuses: number[] = [];
      const worker = async () => {
        for (let i = 0; i < 25; i++) {
          const res = await fetch(`${url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
          statuses.push(res.status);
          await res.arrayBuffer();
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
      return statuses;
    };
    // nginx keeps idle connections to the functions for UPSTREAM_KEEPALIVE_TIMEOUT_MS (60 s), the
    // functions keep theirs longer (75 s), nginx keeps the client's 65 s: one gap past all of them,
    // between two bursts.
    const gap = FUNCTION_KEEPALIVE_TIMEOUT_MS + 5000;
    expect(gap).toBeGreaterThan(UPSTREAM_KEEPALIVE_TIMEOUT_MS);
    const statuses = await burst();
    await new Promise((r) => setTimeout(r, gap));
    statuses.push(...(await burst()));
    process.stdout.write(`\n[figures] idle gap of ${gap / 1000} s between two bursts: ${statuses.length} requests, ${statuses.filter((x) => x !== 200).length} failed\n`);
    expect(statuses).toHaveLength(200);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });

  it('leaves a broken function answering 503 JSON while the others keep working', async () => {
    writeFileSync(join(root, 'dist/digits/model.onnx'), 'not a model any more');
    await buildFunctionImage('digits', join(root, 'dist'));
    await composeRun(stack(), ['up', '-d', '--no-deps', 'digits']);
    await waitFor('digits to answer 503', async () => {
      const res = await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(0)] }));
      return res.status === 503 || `status ${res.status}`;
    }, 60_000);
    const err = await errorOf(await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(0)] })));
    expect(err).toEqual({ status: 503, error: "function 'digits' is unavailable: no replica is answering" });
    expect((await fetch(`${url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
    expect((await fetch(`${url}/v2/models/vad/ready`)).status).toBe(200);
    // The engine keeps restarting the crashing replicas, with growing delays between attempts.
    const restarts = () => docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=digits'])
      .trim().split('\n').filter(Boolean)
      .reduce((n, id) => n + Number(docker(['inspect', '--format', '{{.RestartCount}}', id]).trim()), 0);
    const first = restarts();
    await new Promise((r) => setTimeout(r, 4000));
    const later = restarts();
    process.stdout.write(`\n[figures] crashing function: ${first} -> ${later} restarts in 4 s (backoff), others unaffected\n`);
    expect(later).toBeGreaterThan(first);
    // Backoff: far fewer restarts than the seconds elapsed would allow at a fixed 100 ms delay.
    expect(later - first).toBeLessThan(20);
  });

  it('goes down leaving no containers, networks or volumes behind', async () => {
    await stackDown(stack());
    down = true;
    expect(projectLeftovers(project)).toBe('');
  });
});
