/**
 * A real browser for tests: Debian's headless Chromium driven by playwright-core (no browser is
 * ever downloaded). Skipped with a printed reason where /usr/bin/chromium is missing, except in
 * CI (CI=true), where a missing browser fails the run.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
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

/** A browser with a fresh profile of its own (JavaScript off on request); `close` removes the profile. */
export async function openBrowser(options: { javaScript?: boolean } = {}): Promise<{ context: BrowserContext; page: Page; errors: string[]; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'modelfn-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1100, height: 900 },
    javaScriptEnabled: options.javaScript ?? true,
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

/** Saves a screenshot (the full page unless told) as test-artifacts/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string, options: { fullPage?: boolean } = {}): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path, fullPage: options.fullPage ?? true });
  return path;
}

/** The form a function's card shows (the chosen route's). */
export const visibleForm = (page: Page, fn: string) => page.locator(`[data-function="${fn}"] form.try:not([hidden])`);

/**
 * Does what a person does on the gateway's root page: sends iris's prefilled /species request,
 * digits' example image and vad's example recording (one click), and reads the answers shown.
 */
export async function tryGatewayPage(page: Page, url: string): Promise<{ iris: string; digits: string; vad: string }> {
  await page.goto(`${url}/`);
  const answers: Record<string, string> = {};
  for (const [fn, button] of [['iris', 'button[type=submit]'], ['digits', 'button[type=submit]'], ['vad', 'button[data-example]']] as const) {
    const form = visibleForm(page, fn);
    await form.locator(button).click();
    await form.locator('pre.answer.ok, pre.answer.failed').waitFor({ timeout: 15_000 });
    answers[fn] = await form.locator('pre.answer').innerText();
  }
  return { iris: answers.iris, digits: answers.digits, vad: answers.vad };
}

const FIELDS = ['state', 'replicas', 'rps', 'p50', 'p99', 'batch', 'errors', 'reason'];

/** A live view row's fields as shown. */
async function rowFields(page: Page, selector: string, fields: readonly string[]): Promise<Record<string, string>> {
  const row = page.locator(selector);
  return Object.fromEntries(await Promise.all(fields.map(async (f) => [f, (await row.locator(`[data-field="${f}"]`).innerText()).trim()])));
}

/** The live view's row of a function, as shown: state, replicas, requests/s, median, p99, batch, errors/s, reason. */
export const liveRow = (page: Page, fn: string) => rowFields(page, `tr[data-live="${fn}"]`, FIELDS);

/** The live view's row of one version of a function, as shown: its share of the split, then a function row's fields. */
export const versionRow = (page: Page, fn: string, version: string) => rowFields(page, `tr[data-live-version="${fn}"][data-version="${version}"]`, ['share', ...FIELDS]);

async function waitForRow(page: Page, what: string, read: () => Promise<Record<string, string>>, ok: (row: Record<string, string>) => boolean, timeoutMs: number): Promise<Record<string, string>> {
  const deadline = Date.now() + timeoutMs;
  let row = await read();
  while (!ok(row)) {
    if (Date.now() > deadline) throw new Error(`live view of ${what} never became as expected: ${JSON.stringify(row)}`);
    await page.waitForTimeout(250);
    row = await read();
  }
  return row;
}

/** Waits until the live view of a function satisfies `ok` (it refreshes itself every 2 s). */
export const waitForLiveRow = (page: Page, fn: string, ok: (row: Record<string, string>) => boolean, timeoutMs = 15_000) =>
  waitForRow(page, fn, () => liveRow(page, fn), ok, timeoutMs);

/** Waits until the live view's row of one version satisfies `ok`. */
export const waitForVersionRow = (page: Page, fn: string, version: string, ok: (row: Record<string, string>) => boolean, timeoutMs = 15_000) =>
  waitForRow(page, `${fn} version ${version}`, () => versionRow(page, fn, version), ok, timeoutMs);
