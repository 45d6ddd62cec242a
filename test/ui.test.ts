/**
 * The pages, as a person uses them: headless Chromium on the gateway's root page and on a
 * function's docs page (embedded mode). Screenshots are kept in test-artifacts/.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbedded, type EmbeddedServer } from '../runtime/gateway/embedded.ts';
import { ROOT, memoryLogger, testConfig } from '../runtime/testing/index.ts';
import { chromiumAvailable, openBrowser, screenshot, tryGatewayPage } from './browser.ts';

/** The answer's body: the text after the status line. */
const bodyOf = (answer: string) => JSON.parse(answer.slice(answer.indexOf('\n') + 1));

describe.runIf(chromiumAvailable('browser tests'))('in a browser (headless Chromium)', () => {
  let server: EmbeddedServer;
  let browser: Awaited<ReturnType<typeof openBrowser>>;
  beforeAll(async () => {
    server = await startEmbedded({ functionsDir: join(ROOT, 'functions'), config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.shutdown();
  });

  it("the gateway's root page lists every function, and sends a prediction and a recording", async () => {
    const { page } = browser;
    const { iris, vad } = await tryGatewayPage(page, server.url);
    expect(await page.locator('[data-function]').evaluateAll((cards) => cards.map((c) => c.getAttribute('data-function')))).toEqual(['digits', 'iris', 'vad']);
    expect(iris).toMatch(/^200 OK/);
    expect(bodyOf(iris).predictions.map((p: { species: string }) => p.species)).toEqual(['setosa', 'virginica']);
    expect(vad).toMatch(/^200 OK/);
    expect(bodyOf(vad).segments).toHaveLength(2);
    // digits offers /predict, prefilled from its model's metadata (64 zeros).
    expect(await page.locator('[data-function="digits"] select').inputValue()).not.toBe('');
    expect(await page.locator('[data-function="digits"] textarea').inputValue()).toContain('"instances"');
    const shot = await screenshot(page, 'gateway-page');
    expect(existsSync(shot)).toBe(true);
    expect(browser.errors).toEqual([]);
  });

  it('shows an error answer as an error', async () => {
    const { page } = browser;
    await page.goto(`${server.url}/`);
    const iris = page.locator('[data-function="iris"]');
    await iris.locator('select').selectOption({ label: 'POST /iris/predict · Predict: instances in, predictions out' });
    await iris.locator('textarea').fill('{"instances": [[1, 2]]}');
    await iris.locator('form button[type=submit]').click();
    const answer = iris.locator('pre.answer.failed');
    await answer.waitFor({ timeout: 15_000 });
    expect(await answer.innerText()).toMatch(/^400 Bad Request[\s\S]*the model expects \[-1,4\]/);
  });

  it("a function's docs page lists its routes and tries one", async () => {
    const { page } = browser;
    await page.goto(`${server.url}/iris/docs`);
    await page.locator('h1').waitFor();
    expect(await page.locator('h1').innerText()).toBe('iris');
    const operations = await page.locator('details[data-operation]').evaluateAll((list) => list.map((d) => d.getAttribute('data-operation')));
    expect(operations).toEqual(expect.arrayContaining(['post_species', 'predict', 'infer', 'model_metadata', 'live', 'metrics']));
    expect(await page.locator('.tensors').first().innerText()).toBe('input input: FP32 [-1, 4]');
    const infer = page.locator('details[data-operation="infer"]');
    await infer.locator('button[type=submit]').click();
    await infer.locator('pre.answer.ok').waitFor({ timeout: 15_000 });
    const answer = bodyOf(await infer.locator('pre.answer').innerText());
    expect(answer.outputs.find((o: { name: string }) => o.name === 'label').data).toEqual([0, 2]);
    await screenshot(page, 'iris-docs');
    expect(browser.errors).toEqual([]);
  });
});
