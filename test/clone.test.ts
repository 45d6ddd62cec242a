/**
 * Tried as a new user would: a fresh clone of the repository (its committed HEAD) in a temporary
 * folder, set up and started with the README's Quickstart command exactly as written, then a
 * prediction from every example function. Needs git and the npm registry (npm ci).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, postJson } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { runInShell, shellEnv, waitForFunctions, type ShellProcess } from './process.ts';
import { quickstartCommand } from './readme.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-clone-'));
let started: ShellProcess | undefined;
afterAll(async () => {
  await started?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

function isGitCheckout(): boolean {
  try {
    execFileSync('git', ['-C', ROOT, 'rev-parse', '--verify', 'HEAD'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('a fresh clone, set up and started as the README says', () => {
  it('answers a prediction from every example function', { timeout: 600_000 }, async (ctx) => {
    if (!isGitCheckout()) {
      if (process.env.CI === 'true') throw new Error('CI=true but the project is not a git checkout');
      process.stdout.write('\n[skipped] the clone test: the project is not a git checkout\n');
      ctx.skip();
      return;
    }
    const clone = join(scratch, 'modelfn');
    execFileSync('git', ['clone', '--quiet', '--no-local', ROOT, clone], { stdio: 'pipe', timeout: 120_000 });
    const command = quickstartCommand(readFileSync(join(clone, 'README.md'), 'utf8'));
    // A comment may follow (how to choose the port); bash passes over it.
    expect(command).toMatch(/^npm ci && npm start( +#.*)?$/);

    // PORT is read by npm start: the one thing changed, so the test never collides with a real server.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    started = runInShell(command, { cwd: clone, env: shellEnv({ PORT: String(port) }) });
    await waitForFunctions(url, ['digits', 'iris', 'vad'], started, 480_000);

    const index = (await (await fetch(`${url}/`)).json()) as { functions: { name: string }[] };
    expect(index.functions.map((f) => f.name)).toEqual(['digits', 'iris', 'vad']);

    const iris = await fetch(`${url}/iris/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }));
    expect(((await iris.json()) as { predictions: { label: number }[] }).predictions.map((p) => p.label)).toEqual([0, 2]);

    const wav = readFileSync(join(clone, 'functions/vad/test/speech.wav'));
    const vad = await fetch(`${url}/vad/segments`, { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: wav });
    expect(((await vad.json()) as { segments: unknown[] }).segments).toHaveLength(2);

    const digits = await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(0)] }));
    const [prediction] = ((await digits.json()) as { predictions: { label: number; probabilities: number[] }[] }).predictions;
    expect(prediction.probabilities).toHaveLength(10);
    expect(Number.isInteger(prediction.label)).toBe(true);

    // npm has nothing to warn about in the project's configuration (npm ci and npm start alike).
    expect(started.output()).not.toMatch(/npm warn|Unknown (project|user) config/i);
    await started.stop();
    started = undefined;
  });
});
