/**
 * The pages, as a person uses them: headless Chromium on the gateway's root page (its cards and
 * its live view) and on the docs pages, in embedded mode and behind a real nginx, with and
 * without JavaScript. Screenshots are kept in test-artifacts/.
 */
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxConfig } from '../builder/render/nginx.ts';
import { deploymentUnits, serviceName } from '../builder/policy.ts';
import { VERSION } from '../runtime/core/version.ts';
import { loadFunctionDir } from '../runtime/function/discover.ts';
import { startEmbedded, type EmbeddedServer } from '../runtime/gateway/embedded.ts';
import { cardOf, describeFunctions } from '../runtime/pages/describe.ts';
import { gatewayPage } from '../runtime/pages/ui.ts';
import { startFunction, type RunningFunction } from '../runtime/serve/server.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../runtime/testing/index.ts';
import type { Page } from 'playwright-core';
import { chromiumAvailable, liveRow, openBrowser, screenshot, tryGatewayPage, versionRow, visibleForm, waitForLiveRow, waitForVersionRow } from './browser.ts';
import { freePort } from './docker.ts';
import { nginxImage, startNginx } from './nginx.ts';

/** The answer's body: the text after the status line. */
const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\n') + 1));

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-ui-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The live view counted requests: a rate above zero and a median in milliseconds. */
const counted = (row: Record<string, string>) => row.state === 'ready' && Number(row.rps) > 0 && / ms$/.test(row.p50) && / ms$/.test(row.p99);

describe.runIf(chromiumAvailable('browser tests'))('in a browser (headless Chromium)', () => {
  let server: EmbeddedServer;
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
  });
  afterAll(() => server?.shutdown());

  it('every page reads without JavaScript: rendered on the server', async () => {
    const browser = await openBrowser({ javaScript: false });
    try {
      const { page } = browser;
      await page.goto(`${server.url}/`);
      expect(await page.locator('[data-function]').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-function')))).toEqual(['digits', 'iris', 'vad']);
      for (const fn of ['digits', 'iris', 'vad']) expect((await liveRow(page, fn)).state).toBe('ready');
      const digits = page.locator('[data-function="digits"]');
      expect(await digits.locator('p').first().innerText()).toMatch(/^Handwritten digits: an 8x8 greyscale image/);
      // A real image of an 8 from scikit-learn's digits, not zeros.
      expect((await visibleForm(page, 'digits').locator('textarea').inputValue()).replace(/\s+/g, ' ')).toContain('[ [ 0, 0, 9, 14, 8, 1, 0, 0, 0, 0, 12, 14, 14, 12');
      expect(await visibleForm(page, 'vad').locator('button[data-example]').innerText()).toBe('Send the example (speech.wav)');
      await screenshot(page, 'gateway-page-without-javascript');

      await page.goto(`${server.url}/iris/docs`);
      expect(await page.locator('h1').innerText()).toBe('iris');
      // Every route is shown with the path a person calls: the function's under /iris, the model's at /v2/models/iris.
      const paths = await page.locator('details[data-operation] summary code').allInnerTexts();
      expect(paths).toEqual(expect.arrayContaining(['/iris/species', '/iris/predict', '/v2/models/iris/infer', '/v2/models/iris', '/iris/v2/health/live', '/iris/metrics', '/iris/stats']));
      expect(paths.every((p) => p.startsWith('/iris/') || p.startsWith('/v2/models/iris'))).toBe(true);
      await screenshot(page, 'iris-docs-without-javascript');
    } finally {
      await browser.close();
    }
  });

  it("sends iris's flowers, digits' image and vad's recording in one click each; the live view counts them", async () => {
    const browser = await openBrowser();
    try {
      const { page } = browser;
      const { iris, digits, vad } = await tryGatewayPage(page, server.url);
      expect(iris).toMatch(/^200 OK/);
      expect(bodyOf(iris).predictions.map((p: { species: string }) => p.species)).toEqual(['setosa', 'virginica']);
      expect(digits).toMatch(/^200 OK/);
      expect(bodyOf(digits).predictions[0].label).toBe(8);
      expect(vad).toMatch(/^200 OK/);
      expect(bodyOf(vad).segments).toEqual([{ start: 1.024, end: 2.688 }, { start: 3.712, end: 4.288 }]);
      // The live view refreshes by itself: each function's requests appear within a few seconds.
      const irisRow = await waitForLiveRow(page, 'iris', counted);
      expect(irisRow.replicas).toBe('1');
      // The page remembers each refresh for its chart: requests/s and p99 as two lines, named in its label.
      const chart = page.locator('svg[data-chart="iris"]');
      expect((await chart.locator('polyline[data-series="rps"]').getAttribute('points'))!.split(' ').length).toBeGreaterThanOrEqual(1);
      expect(await chart.getAttribute('aria-label')).toMatch(/^the last \d+ min: requests\/s up to [\d.]+, p99 up to [\d.]+ ms$/);
      expect(await chart.getAttribute('aria-label')).not.toMatch(/up to 0,/);
      expect(Number(irisRow.batch)).toBeGreaterThanOrEqual(1);
      await waitForLiveRow(page, 'digits', counted);
      // vad runs one frame at a time, with no batch dimension: no batch size to show.
      expect((await waitForLiveRow(page, 'vad', counted)).batch).toBe('–');
      expect(existsSync(await screenshot(page, 'gateway-page'))).toBe(true);
      // The first screen, as the README shows it (docs/gateway-page.png is a copy).
      await page.locator('body').evaluate(() => window.scrollTo(0, 0));
      await screenshot(page, 'gateway-page-first-screen', { fullPage: false });
      expect(browser.errors).toEqual([]);

      // A capture taken as soon as the page has loaded, before any script ran, shows everything.
      await page.goto(`${server.url}/`, { waitUntil: 'commit' });
      await page.waitForSelector('[data-function="vad"] form.try', { state: 'attached' });
      expect(await page.locator('[data-function]').count()).toBe(3);
      await screenshot(page, 'gateway-page-at-once');
    } finally {
      await browser.close();
    }
  });

  it('shows an error answer as an error', async () => {
    const browser = await openBrowser();
    try {
      const { page } = browser;
      await page.goto(`${server.url}/`);
      const card = page.locator('[data-function="iris"]');
      await card.locator('select').selectOption({ label: 'POST /iris/predict · Predict: instances in, predictions out' });
      const form = visibleForm(page, 'iris');
      await form.locator('textarea').fill('{"instances": [[[5.1, 3.5, 1.4, 0.2]]]}');
      await form.locator('button[type=submit]').click();
      const answer = form.locator('pre.answer.failed');
      await answer.waitFor({ timeout: 15_000 });
      expect(await answer.innerText()).toMatch(/^400 Bad Request[\s\S]*the batch has shape \[1,1,4\], the model expects \[-1,4\]/);
    } finally {
      await browser.close();
    }
  });

  it("a function's docs page lists its routes and tries one", async () => {
    const browser = await openBrowser();
    try {
      const { page } = browser;
      await page.goto(`${server.url}/iris/docs`);
      const operations = await page.locator('details[data-operation]').evaluateAll((list) => list.map((d) => d.getAttribute('data-operation')));
      expect(operations).toEqual(expect.arrayContaining(['post_species', 'predict', 'infer', 'model_metadata', 'live', 'metrics', 'stats']));
      const tensors = await page.locator('table.tensors tbody tr').evaluateAll((rows) => rows.map((r) => Array.from(r.children).map((c) => (c.textContent ?? '').trim())));
      expect(tensors).toEqual([
        ['input', 'input', 'FP32', '[-1, 4]', ''],
        ['output', 'probabilities', 'FP32', '[-1, 3]', '0 setosa 1 versicolor 2 virginica'],
        ['output', 'label', 'INT64', '[-1]', ''],
      ]);
      expect(await page.locator('dl.facts').innerText()).toMatch(/opset\s+ai\.onnx 17[\s\S]*onnxruntime\s+1\.\d+\.\d+[\s\S]*execution provider\s+CPU/);
      const infer = page.locator('details[data-operation="infer"]');
      await infer.locator('button[type=submit]').click();
      await infer.locator('pre.answer.ok').waitFor({ timeout: 15_000 });
      const answer = bodyOf(await infer.locator('pre.answer').innerText());
      expect(answer.outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([0, 2]);
      await screenshot(page, 'iris-docs');
      expect(browser.errors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe.runIf(chromiumAvailable('browser tests'))('a broken function on the pages', () => {
  it('its card and its docs page say why, with the line and column, and what to do', async () => {
    const dir = join(scratch, 'broken/functions');
    mkdirSync(join(dir, 'typo'), { recursive: true });
    mkdirSync(join(dir, 'digits'), { recursive: true });
    writeFileSync(join(scratch, 'broken/package.json'), '{"type": "module"}\n');
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'typo/model.onnx'));
    writeFileSync(join(dir, 'typo/function.ts'), "export default {\n  description: 'has a typo',\n);\n");
    copyFileSync(join(ROOT, 'functions/digits/model.onnx'), join(dir, 'digits/model.onnx'));
    const server = await startEmbedded({ functionsDir: dir, config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    const browser = await openBrowser();
    try {
      const { page } = browser;
      await page.goto(`${server.url}/`);
      const card = page.locator('[data-function="typo"]');
      expect(await card.getAttribute('data-state')).toBe('failed');
      const reason = await card.locator('pre.failure').innerText();
      // Where (line and column, as the compiler counts them) and what.
      expect(reason).toMatch(/typo\/function\.ts:3:\d+: cannot be loaded: \S.*$/);
      const row = await waitForLiveRow(page, 'typo', (r) => r.state === 'failed');
      expect(row.reason).toBe(reason);
      expect((await liveRow(page, 'digits')).state).toBe('ready');
      await screenshot(page, 'gateway-page-broken-function');

      await page.goto(`${server.url}/typo/docs`);
      expect(await page.locator('h1').innerText()).toBe('typo not serving');
      expect(await page.locator('pre.failure').innerText()).toContain(reason);
      expect(await page.locator('main').innerText()).toContain('npx modelfn list');
      await screenshot(page, 'broken-function-docs');
    } finally {
      await browser.close();
      await server.shutdown();
    }
  });
});

describe.runIf(chromiumAvailable('browser tests'))('the live view behind nginx', () => {
  const running: RunningFunction[] = [];
  afterAll(async () => {
    for (const fn of running) await fn.shutdown();
  });

  it('adds up the replicas of a function, and shows a function with no replica as unavailable', { timeout: 90_000 }, async (ctx) => {
    const nginx = nginxImage('the live view behind nginx');
    if (!nginx) return ctx.skip();
    const config = testConfig();
    const [iris, digits, vad] = await Promise.all(['iris', 'digits', 'vad'].map((name) => loadFunctionDir(join(ROOT, 'functions', name), config)));
    // iris at two replicas, each able to reach both (MODELFN_PEERS), digits at one, vad at none.
    const irisPorts = [await freePort(), await freePort()];
    const peers = irisPorts.map((p) => `127.0.0.1:${p}`).join(',');
    for (const port of irisPorts) running.push(await startFunction(iris, testConfig({ PORT: String(port), MODELFN_PEERS: peers }), memoryLogger()));
    running.push(await startFunction(digits, testConfig({ PORT: '0' }), memoryLogger()));
    const vadPort = await freePort();
    const described = await describeFunctions([digits, iris, vad]);
    // The generated config, with each function's upstream on loopback instead of its service.
    const upstreams: Record<string, string[]> = {
      iris: irisPorts.map((p) => `127.0.0.1:${p}`),
      digits: [`127.0.0.1:${running[2].port}`],
      vad: [`127.0.0.1:${vadPort}`],
    };
    let conf = nginxConfig(described, { mode: 'vip', serviceHost: (fn) => `${fn.name}.invalid` });
    for (const [name, servers] of Object.entries(upstreams)) {
      conf = conf.replace(`server ${name}.invalid:8080 max_fails=0;`, servers.map((s) => `server ${s} max_fails=0;`).join('\n        '));
    }
    const gateway = await startNginx(nginx, conf, gatewayPage(described.map((fn) => cardOf(fn)), VERSION, { ssi: true }), join(scratch, 'nginx'));
    const browser = await openBrowser();
    try {
      for (let i = 0; i < 20; i++) expect((await fetch(`${gateway.url}/iris/predict${i % 2 ? '/' : ''}`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }))).status).toBe(200);
      // Behind nginx too, /iris/ is the function: its entry, and its docs for a browser.
      expect(await (await fetch(`${gateway.url}/iris/`)).json()).toMatchObject({ name: 'iris', prefix: '/iris', predict: '/iris/predict' });
      const toDocs = await fetch(`${gateway.url}/iris/`, { headers: { Accept: 'text/html' }, redirect: 'manual' });
      expect([toDocs.status, toDocs.headers.get('location')]).toEqual([302, '/iris/docs']);
      // The first paint already says each function's state: nginx asked each one as it sent the page.
      const served = await (await fetch(`${gateway.url}/`, { headers: { Accept: 'text/html' } })).text();
      for (const [name, state] of [['iris', 'ready'], ['digits', 'ready'], ['vad', 'unavailable']]) {
        expect(served, name).toContain(`<tr data-live="${name}"`);
        expect(served, name).toMatch(new RegExp(`<tr data-live="${name}"[^]*?<span data-field="state" class="state state-${state}">${state}</span>`));
        expect(served, name).toMatch(new RegExp(`data-function="${name}" data-state="${state}">`));
      }
      expect(served).not.toContain('<!--#');
      const { page } = browser;
      await page.goto(`${gateway.url}/`);
      const irisRow = await waitForLiveRow(page, 'iris', (r) => counted(r) && r.replicas === '2');
      // Both replicas served (nginx spreads the requests): their windows add up to all 20.
      expect(Number(irisRow.rps)).toBeGreaterThan(0);
      expect((await waitForLiveRow(page, 'digits', (r) => r.state === 'ready')).replicas).toBe('1');
      const vadRow = await waitForLiveRow(page, 'vad', (r) => r.state === 'unavailable');
      expect(vadRow.reason).toBe("function 'vad' is unavailable: no replica is answering");
      expect(await page.locator('[data-function="vad"]').getAttribute('data-state')).toBe('unavailable');
      await screenshot(page, 'gateway-page-nginx-live');
      const stats = (await (await fetch(`${gateway.url}/iris/stats`)).json()) as { replicas: number; window: { requests: number } };
      expect(stats.replicas).toBe(2);
      expect(stats.window.requests).toBe(20);
      expect(browser.errors).toEqual([]);
    } finally {
      await browser.close();
      await gateway.stop();
    }
  });
});

/** `functions/flowers` in two versions (copies of iris), split 80/20 as declared. */
function flowersDir(root: string): string {
  const dir = join(scratch, root, 'functions');
  for (const v of ['1', '2']) {
    mkdirSync(join(dir, 'flowers', v), { recursive: true });
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(dir, 'flowers', v, 'model.onnx'));
  }
  writeFileSync(join(dir, 'flowers/function.ts'), "export default { traffic: { '1': 80, '2': 20 } };\n");
  return dir;
}

/**
 * Requests to each version of flowers on its versioned path (30 to version 1, 10 to version 2), and 10
 * through the split. Version 1 gets at least 30 and version 2 at most 20, whichever way the split falls.
 */
async function sendToEachVersion(url: string): Promise<void> {
  const flower = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };
  const sends: [string, number][] = [['/v2/models/flowers/versions/1/infer', 30], ['/v2/models/flowers/versions/2/infer', 10], ['/v2/models/flowers/infer', 10]];
  for (const [path, count] of sends) {
    for (let i = 0; i < count; i++) {
      const res = await fetch(`${url}${path}`, postJson(flower));
      expect(res.status, path).toBe(200);
      await res.arrayBuffer();
    }
  }
}

const shareIn = (page: Page, fn: string, version: string) => page.locator(`[data-function="${fn}"] li[data-version="${version}"] [data-field="share"]`).innerText();

describe.runIf(chromiumAvailable('browser tests'))('a function with versions in the live view', () => {
  it('embedded mode: a row per version under the function, its share of the split and its own requests/s, p50, p99 and errors', { timeout: 60_000 }, async () => {
    const server = await startEmbedded({ functionsDir: flowersDir('embedded-versions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    const browser = await openBrowser();
    try {
      const { page } = browser;
      await page.goto(`${server.url}/`);
      // As served: each version's row with its share, before any request.
      expect(await versionRow(page, 'flowers', '1')).toMatchObject({ share: '80%', state: 'ready', replicas: '1' });
      expect(await versionRow(page, 'flowers', '2')).toMatchObject({ share: '20%', state: 'ready', replicas: '1' });
      await sendToEachVersion(server.url);
      const rows = [await waitForVersionRow(page, 'flowers', '1', counted), await waitForVersionRow(page, 'flowers', '2', counted)];
      for (const row of rows) expect([row.errors, row.replicas]).toEqual(['0', '1']);
      // Version 1 had 30 of its own and version 2 at most 20 (its 10 and the split's 10 at most).
      expect(Number(rows[0].rps)).toBeGreaterThan(Number(rows[1].rps));
      const whole = await waitForLiveRow(page, 'flowers', counted);
      expect(whole.replicas).toBe('2');
      expect(await shareIn(page, 'flowers', '2')).toBe('20%');
      await screenshot(page, 'gateway-page-versions');
      expect(browser.errors).toEqual([]);
    } finally {
      await browser.close();
      await server.shutdown();
    }
  });

  it('behind nginx: the split nginx runs (changed from the declared one, as modelfn traffic does) on the first paint and in the live view, each version\'s figures gathered from either', { timeout: 90_000 }, async (ctx) => {
    const nginx = nginxImage('a function with versions behind nginx');
    if (!nginx) return ctx.skip();
    const fn = await loadFunctionDir(join(flowersDir('nginx-versions'), 'flowers'), testConfig());
    // Each version on its own loopback port; every version is each one's peer (MODELFN_PEERS, builder/policy.ts).
    const units = deploymentUnits(fn);
    const ports = new Map<string, number>();
    for (const unit of units) ports.set(unit.version, await freePort());
    const peers = [...ports.values()].map((port) => `127.0.0.1:${port}`).join(',');
    const running: RunningFunction[] = [];
    for (const unit of units) running.push(await startFunction(fn, testConfig({ PORT: String(ports.get(unit.version)), MODELFN_VERSION: unit.version, MODELFN_PEERS: peers }), memoryLogger()));
    // The split in force is not the declared 80/20: nginx runs 30/70, as after `modelfn traffic flowers 1=30 2=70`.
    const live = { ...fn, traffic: [{ version: '1', percent: 30 }, { version: '2', percent: 70 }] };
    let conf = nginxConfig([live], { mode: 'vip', serviceHost: (unit) => `${serviceName(unit)}.invalid` });
    for (const unit of units) conf = conf.replace(`server ${serviceName(unit)}.invalid:8080 max_fails=0;`, `server 127.0.0.1:${ports.get(unit.version)} max_fails=0;`);
    expect(conf).not.toContain('.invalid:8080');
    const [described] = await describeFunctions([fn]);
    const gateway = await startNginx(nginx, conf, gatewayPage([cardOf(described)], VERSION, { ssi: true }), join(scratch, 'nginx-versions/gateway'));
    const browser = await openBrowser();
    try {
      // The first paint: nginx filled in each version's share from the function's /stats as it sent the page.
      const served = await (await fetch(`${gateway.url}/`, { headers: { Accept: 'text/html' } })).text();
      expect(served).not.toContain('<!--#');
      expect([...served.matchAll(/<tr data-live-version="flowers" data-version="(\d)"[^]*?data-field="share" class="share">([^<]*)<[^]*?class="state state-(\w+)">(\w+)</g)].map((m) => m.slice(1)))
        .toEqual([['1', '30%', 'ready', 'ready'], ['2', '70%', 'ready', 'ready']]);
      expect(served).toContain('<li data-version="2"><strong>version 2</strong>: <span data-field="share">70%</span>');
      await sendToEachVersion(gateway.url);
      const { page } = browser;
      await page.goto(`${gateway.url}/`);
      const rows = [await waitForVersionRow(page, 'flowers', '1', counted), await waitForVersionRow(page, 'flowers', '2', counted)];
      expect(rows.map((r) => [r.share, r.replicas, r.errors])).toEqual([['30%', '1', '0'], ['70%', '1', '0']]);
      expect((await waitForLiveRow(page, 'flowers', counted)).replicas).toBe('2');
      expect(await shareIn(page, 'flowers', '1')).toBe('30%');
      expect(await page.locator('[data-function="flowers"] header').innerText()).toContain('2 replicas declared');
      await screenshot(page, 'gateway-page-versions-nginx');
      // The docs page (served by one version, which knows the declared split) shows the split in force too.
      await page.goto(`${gateway.url}/flowers/docs`);
      await page.locator('section.versions li[data-version="1"] [data-field="share"]', { hasText: '30%' }).waitFor({ timeout: 10_000 });
      expect(await page.locator('section.versions li[data-version="2"] [data-field="share"]').innerText()).toBe('70%');
      expect(browser.errors).toEqual([]);
    } finally {
      await browser.close();
      await gateway.stop();
      for (const server of running) await server.shutdown();
    }
  });
});
