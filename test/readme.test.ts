/**
 * The README cannot rot: its curl examples run with real curl against `npm start` and must
 * answer what the README shows; its declaration example loads and serves; its tables list every
 * setting and declaration field with the defaults the code has.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SETTINGS } from '../runtime/core/config.ts';
import { ACTIVATOR_SETTINGS } from '../runtime/activator/config.ts';
import { DECLARATION_FIELDS } from '../runtime/function/check.ts';
import { startEmbedded } from '../runtime/gateway/embedded.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { runInShell, shellEnv, waitForFunctions, type ShellProcess } from './process.ts';
import { curlExamples, expectShown, fencedBlocks } from './readme.ts';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const scratch = mkdtempSync(join(tmpdir(), 'modelfn-readme-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function sh(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('bash', ['-c', command], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

describe('the README', () => {
  it('marks every curl example for this test', () => {
    const examples = curlExamples(README);
    expect(examples.length).toBeGreaterThanOrEqual(8);
    const tested = new Set(examples.map((e) => e.line));
    const untested = fencedBlocks(README).filter((b) => b.lang === 'sh' && /\bcurl\b/.test(b.text) && !tested.has(b.line));
    expect(untested.map((b) => `line ${b.line}: ${b.text.split('\n')[0]}`), 'curl examples without <!-- readme-test --> above them').toEqual([]);
  });

  it('is compared with answers to the precision it shows, key for key', () => {
    expectShown({ p: [0.98158, 1.4e-8], label: 0, id: '42' }, { p: [0.9816, 0], label: 0, id: '42' });
    expect(() => expectShown({ p: [0.98158] }, { p: [0.9815] })).toThrow();
    expect(() => expectShown({ p: [0.98158], extra: 1 }, { p: [0.9816] })).toThrow();
    expect(() => expectShown({ p: [0.98158, 0.1] }, { p: [0.9816] })).toThrow();
    expect(() => expectShown({ id: '42' }, { id: 42 })).toThrow();
  });

  it('says on its first screen, in this order: what modelfn is, the two commands, a picture of the gateway page, where to go next', () => {
    const top = README.slice(0, README.indexOf('From another shell'));
    const at = (text: string) => {
      const i = top.indexOf(text);
      expect(i, text).toBeGreaterThan(-1);
      return i;
    };
    const order = [at('ONNX models as small serverless-style functions'), at('npm ci && npm start'), at('npm ci && npm test'), at('](docs/gateway-page.png)'), at('Next: ')];
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(top.split('\n').length).toBeLessThanOrEqual(40);
    const png = readFileSync(join(ROOT, 'docs/gateway-page.png'));
    expect(png.subarray(1, 4).toString()).toBe('PNG');
  });

  it('lists every setting with its default', () => {
    for (const setting of [...SETTINGS, ...ACTIVATOR_SETTINGS]) expect(README).toContain(`| \`${setting.env}\` | \`${setting.default}\` |`);
  });

  it('lists every declaration field', () => {
    const table = README.slice(README.indexOf('| field | default | meaning |'));
    for (const field of DECLARATION_FIELDS) expect(table).toMatch(new RegExp(`^\\| \`${field}[.(\`]`, 'm'));
  });

  it('shows a declaration that loads, serves its route, and documents it', async () => {
    const block = fencedBlocks(README).find((b) => b.marker === 'declaration');
    expect(block?.lang).toBe('ts');
    const functions = join(scratch, 'project/functions');
    mkdirSync(join(functions, 'flowers'), { recursive: true });
    symlinkSync(join(ROOT, 'runtime'), join(scratch, 'project/runtime'));
    copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(functions, 'flowers/model.onnx'));
    writeFileSync(join(functions, 'flowers/function.ts'), block!.text);
    const server = await startEmbedded({ functionsDir: functions, config: testConfig({ PORT: '0' }), logger: memoryLogger() });
    try {
      expect(server.slots()[0].failure).toBeUndefined();
      const doc = (await (await fetch(`${server.url}/flowers/openapi.json`)).json()) as { paths: Record<string, Record<string, any>> };
      const routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => op.tags?.[0] === 'function').map(([method, op]) => ({ path, method, op })));
      expect(routes.length).toBeGreaterThan(0);
      for (const { path, op } of routes) {
        const example = op.requestBody.content['application/json'].example;
        const res = await fetch(`${server.url}/flowers${path}`, postJson(example));
        expect(res.status, `${path}: ${await res.clone().text()}`).toBe(200);
      }
    } finally {
      await server.shutdown();
    }
  });
});

describe('the README examples against npm start', () => {
  let port: number;
  let server: ShellProcess;
  beforeAll(async () => {
    port = await freePort();
    server = runInShell('npm start', { cwd: ROOT, env: shellEnv({ PORT: String(port), MODELFN_ACCESS_LOG: 'false' }) });
    await waitForFunctions(`http://127.0.0.1:${port}`, ['digits', 'iris', 'vad'], server, 90_000);
  }, 120_000);
  afterAll(() => server?.stop());

  for (const example of curlExamples(README)) {
    it(`line ${example.line}: ${example.command.split('\n')[0].slice(0, 90)}`, async () => {
      // The port is the only change made to the command.
      const result = await sh(example.command.replaceAll(':8080', `:${port}`));
      expect(result.code, result.stderr).toBe(0);
      const answer = JSON.parse(result.stdout) as unknown;
      if (example.expected === undefined) expect(answer).not.toHaveProperty('error');
      else expectShown(answer, JSON.parse(example.expected));
    });
  }
});
