/**
 * A real browser for tests: Debian's headless Chromium driven by playwright-core (no browser is
 * ever downloaded). Skipped with a printed reason where /usr/bin/chromium is missing, except in
 * CI (CI=true), where a missing browser fails the run.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { ROOT } from '../runtime/testing/index.ts';

export const CHROMIUM = '/usr/bin/chromium';
/** Screenshots land here (gitignored), for people to look at after a run. */
export const ARTIFACTS = join(ROOT, 'test-artifacts');

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];

/** True when the tests may use Chromium; throws in CI when it is missing. */
export function chromiumAvailable(suite: string): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.CI === 'true') throw new Error(`${suite}: CI=true but ${CHROMIUM} is missing (.ci/run installs chromium)`);
  process.stdout.write(`\n[skipped] ${suite}: ${CHROMIUM} is missing (apt-get install chromium)\n`);
  return false;
}

/** A browser with a fresh profile of its own; `close` removes the profile. */
export async function openBrowser(): Promise<{ context: BrowserContext; page: Page; errors: string[]; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'modelfn-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1100, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Saves a full-page screenshot as test-artifacts/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * Does what a person does on the gateway's root page: sends iris's prefilled /species request
 * and vad's recording, and reads the answers shown. Resolves to the two answers' text.
 */
export async function tryGatewayPage(page: Page, url: string): Promise<{ iris: string; vad: string }> {
  await page.goto(`${url}/`);
  const iris = page.locator('[data-function="iris"]');
  await iris.locator('form button[type=submit]').click();
  await iris.locator('pre.answer.ok').waitFor({ timeout: 15_000 });
  const vad = page.locator('[data-function="vad"]');
  await vad.locator('input[type=file]').setInputFiles({
    name: 'speech.wav',
    mimeType: 'audio/wav',
    buffer: readFileSync(join(ROOT, 'functions/vad/test/speech.wav')),
  });
  await vad.locator('form button[type=submit]').click();
  await vad.locator('pre.answer.ok').waitFor({ timeout: 15_000 });
  return { iris: await iris.locator('pre.answer').innerText(), vad: await vad.locator('pre.answer').innerText() };
}
