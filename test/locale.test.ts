/**
 * A model that needs a locale (onnxruntime's StringNormalizer asks for en_US.UTF-8): under
 * `npm start` on a machine without it, one line says what to install; with it, the model serves.
 * The locale is taken away or provided with glibc's LOCPATH, which replaces the system's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, ROOT, errorOf, postJson } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelfn-locale-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const functions = join(scratch, 'functions');
mkdirSync(join(functions, 'normalizer'), { recursive: true });
copyFileSync(join(FIXTURES, 'normalizer.onnx'), join(functions, 'normalizer/model.onnx'));

/** `npm start` on a free port with LOCPATH set; resolves once it serves, with its output so far. */
async function npmStart(locpath: string) {
  const port = await freePort();
  const child = spawn('npm', ['start', '--', '--functions', functions, '--port', String(port)], {
    cwd: ROOT,
    env: { ...process.env, LOCPATH: locpath, MODELFN_ACCESS_LOG: 'false' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300 && !/serving \d+ functions/.test(stderr); i++) {
    if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const stop = async () => {
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(-child.pid!, 'SIGTERM');
    await exited;
  };
  return { url, stop, output: () => ({ stdout, stderr }) };
}

describe('models that need a locale, under npm start', () => {
  it('says in one line what to install where the machine lacks the locale, and answers 503', async () => {
    const empty = join(scratch, 'no-locales');
    mkdirSync(empty);
    const server = await npmStart(empty);
    try {
      const res = await fetch(`${server.url}/v2/models/normalizer/infer`, postJson({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1], data: ['a'] }] }));
      const err = await errorOf(res);
      expect(err.status).toBe(503);
      expect(err.error).toMatch(/needs the en_US\.UTF-8 locale/);
      // The file is named relative to the project, never by the machine's absolute path.
      expect(err.error).toContain('functions/normalizer/model.onnx');
      expect(err.error).not.toContain(scratch);
    } finally {
      await server.stop();
    }
    const { stdout, stderr } = server.output();
    const lines = stderr.split('\n').filter((l) => l.includes('normalizer'));
    expect(lines).toEqual([
      `modelfn: normalizer failed to load and answers 503: functions/normalizer/model.onnx: the model needs the en_US.UTF-8 locale, which this machine lacks; install it (Debian/Ubuntu: apt-get install locales && localedef -i en_US -f UTF-8 en_US.UTF-8) and start again`,
    ]);
    expect(`${stdout}\n${stderr}`).not.toMatch(/^\s+at /m);
  });

  const localedef = ['/usr/bin/localedef', '/usr/sbin/localedef'].find(existsSync);
  const sources = existsSync('/usr/share/i18n/locales/en_US');
  it('serves the model where the locale is there', async (ctx) => {
    if (!localedef || !sources) {
      if (process.env.CI === 'true') throw new Error('CI=true but localedef or its locale sources are missing (.ci/run installs locales)');
      process.stdout.write('\n[skipped] a StringNormalizer model with its locale: localedef or /usr/share/i18n is missing (apt-get install locales)\n');
      ctx.skip();
      return;
    }
    const locales = join(scratch, 'locales');
    mkdirSync(locales);
    const made = spawnSync(localedef, ['-i', 'en_US', '-f', 'UTF-8', join(locales, 'en_US.UTF-8')], { encoding: 'utf8' });
    expect(made.status, made.stderr).toBe(0);
    const server = await npmStart(locales);
    try {
      const res = await fetch(`${server.url}/v2/models/normalizer/infer`, postJson({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [4], data: ['The', 'quick', 'a', 'Fox'] }] }));
      expect(await res.json()).toEqual({ model_name: 'normalizer', model_version: '1', outputs: [{ name: 'normalized', datatype: 'BYTES', shape: [2], data: ['QUICK', 'FOX'] }] });
    } finally {
      await server.stop();
    }
  });
});
