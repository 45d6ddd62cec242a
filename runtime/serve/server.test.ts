import { request as httpRequest } from 'node:http';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, postJson } from '../testing/index.ts';
import { freshConnection } from '../testing/helpers.ts';
import { runServe, startServerProcess, type ServerProcess } from '../testing/process.ts';

const IRIS_MODEL = resolve(ROOT, 'functions/iris/model.onnx');
const scratch = mkdtempSync(join(tmpdir(), 'modelfn-server-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function functionDir(name: string, files: Record<string, string>, model: string | null = IRIS_MODEL): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  if (model) copyFileSync(model, join(dir, 'model.onnx'));
  for (const [file, text] of Object.entries(files)) writeFileSync(join(dir, file), text);
  return dir;
}

describe('the server process', () => {
  let server: ServerProcess | undefined;
  afterAll(() => {
    if (server && server.child.exitCode === null) server.child.kill('SIGKILL');
  });

  it('serves a function over real HTTP on a loopback port', async () => {
    server = await startServerProcess('functions/iris');
    const live = await fetch(`${server.url}/v2/health/live`);
    expect(live.status).toBe(200);
    const res = await fetch(`${server.url}/species`, postJson({ flowers: [{ sepal_length: 6.7, sepal_width: 3.0, petal_length: 5.2, petal_width: 2.3 }] }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const infer = await fetch(`${server.url}/v2/models/iris/infer`, postJson({ id: 'x', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }, { 'X-Request-Id': 'proc-1' }));
    expect(infer.headers.get('x-request-id')).toBe('proc-1');
    expect(((await infer.json()) as { id: string }).id).toBe('x');
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    expect(server.lines.some((l) => l.msg === 'request' && l.request_id === 'proc-1' && l.status === 200)).toBe(true);
  });

  it('drains on SIGTERM: in-flight requests finish, new connections are refused, exit 0', async () => {
    const dir = functionDir('slow', {
      'function.ts': `export default { routes(app) { app.get('/slow', async (c) => { await new Promise((r) => setTimeout(r, 800)); return c.json({ finished: true }); }); } };\n`,
    });
    server = await startServerProcess(dir);
    const inFlight = fetch(`${server.url}/slow`);
    await new Promise((r) => setTimeout(r, 200));
    server.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 200));
    expect(await freshConnection(server.url)).toBe('ECONNREFUSED');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ finished: true });
    expect((await server.exited).code).toBe(0);
    expect(server.lines.find((l) => l.msg === 'stopped')).toMatchObject({ drained: true });
  });

  it('gives up on requests that outlast MODELFN_SHUTDOWN_TIMEOUT_MS and exits 1', async () => {
    const dir = functionDir('stuck', {
      'function.ts': `export default { routes(app) { app.get('/stuck', async (c) => { await new Promise((r) => setTimeout(r, 10000)); return c.json({}); }); } };\n`,
    });
    server = await startServerProcess(dir, { MODELFN_SHUTDOWN_TIMEOUT_MS: '300' });
    const inFlight = fetch(`${server.url}/stuck`).catch((err: Error) => err);
    await new Promise((r) => setTimeout(r, 200));
    server.child.kill('SIGINT');
    expect((await server.exited).code).toBe(1);
    expect(await inFlight).toBeInstanceOf(Error);
  });
});

describe('several workers in one container (MODELFN_WORKERS)', () => {
  it('shares the port between workers, restarts a dead one, and drains them all on SIGTERM', async () => {
    const server = await startServerProcess('functions/iris', { MODELFN_WORKERS: '2' });
    try {
      const deadline = Date.now() + 20_000;
      while (server.lines.filter((l) => l.msg === 'listening').length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const workers = server.lines.filter((l) => l.msg === 'listening').map((l) => l.worker).sort();
      expect(workers).toEqual([0, 1]);
      for (let i = 0; i < 20; i++) {
        const res = await fetch(`${server.url}/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
        expect(res.status).toBe(200);
      }
      // Kill one worker outright: the primary starts another, and requests keep being answered.
      // The process started is the primary (node bin/modelfn.mjs serve), and the workers are its children.
      const children = (pid: number) => execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').map(Number);
      const workerPids = children(server.child.pid!);
      expect(workerPids.length).toBeGreaterThanOrEqual(2);
      process.kill(workerPids[0], 'SIGKILL');
      const again = Date.now() + 20_000;
      while (!server.lines.some((l) => l.msg === 'worker died; restarting') && Date.now() < again) await new Promise((r) => setTimeout(r, 50));
      expect(server.lines.some((l) => l.msg === 'worker died; restarting')).toBe(true);
      while (server.lines.filter((l) => l.msg === 'listening').length < 3 && Date.now() < again) await new Promise((r) => setTimeout(r, 50));
      for (let i = 0; i < 10; i++) expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(200);
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
      expect(server.lines.filter((l) => l.msg === 'stopped').length).toBeGreaterThanOrEqual(2);
    } finally {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    }
  });

  it('exits 1 when the workers cannot start', async () => {
    const dir = functionDir('workers-corrupt', {}, null);
    writeFileSync(join(dir, 'model.onnx'), 'garbage');
    const child = await runServe([dir], { MODELFN_WORKERS: '2' });
    expect(child.code).toBe(1);
    expect(child.stderr).toMatch(/workers-corrupt\/model.onnx: not a valid ONNX model/);
  });
});

describe('start-up failures exit non-zero with one line naming the file', () => {
  it('a missing function folder', async () => {
    const { code, stderr } = await runServe([join(scratch, 'nowhere')]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^modelfn serve: .*nowhere: function folder not found$/);
  });

  it('a missing model', async () => {
    const dir = functionDir('nomodel', { 'function.ts': 'export default {};\n' }, null);
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^modelfn serve: .*nomodel\/model.onnx: model file not found$/);
  });

  it('a corrupt model', async () => {
    const dir = functionDir('corrupt', {}, null);
    writeFileSync(join(dir, 'model.onnx'), 'this is not a protobuf');
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/corrupt\/model.onnx: not a valid ONNX model \(onnxruntime: Protobuf parsing failed\.\)$/m);
  });

  it('a model that is a folder, not a file', async () => {
    const dir = functionDir('modeldir', {}, null);
    mkdirSync(join(dir, 'model.onnx'));
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^modelfn serve: .*modeldir\/model.onnx: is not a file$/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a bad declaration', async () => {
    const dir = functionDir('baddecl', { 'function.ts': "export default { replicas: 0, colour: 'red' };\n" });
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr.trim()).toMatch(/^modelfn serve: .*baddecl\/function.ts: /);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });

  it('a declaration without a default export', async () => {
    const dir = functionDir('noexport', { 'function.ts': 'export const x = 1;\n' });
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/noexport\/function.ts: has no default export/);
  });

  it('a bad setting', async () => {
    const { code, stderr } = await runServe(['functions/iris', '--port', 'seventy']);
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('modelfn serve: PORT="seventy": expected an integer from 0 to 65535');
  });

  it('a prefix the gateway keeps for itself: refused, as the build and modelfn start refuse it', async () => {
    const dir = functionDir('reserved', { 'function.ts': "export default { prefix: '/v2/mine' };\n" });
    const { code, stderr } = await runServe([dir]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual(['modelfn serve: 1 problem:', expect.stringMatching(/^  - .*reserved\/function.ts: prefix '\/v2\/mine' is reserved for the gateway \(\/v2\)$/)]);
  });

  it('a usage error exits 2', async () => {
    const { code, stderr } = await runServe([]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/expected one function folder/);
  });
});

describe('errors from the HTTP parser', () => {
  it('answers headers that are too large with a JSON 431, and keeps serving', async () => {
    const server = await startServerProcess('functions/iris');
    try {
      const status = await new Promise<{ code: number; body: string; type: string }>((done, fail) => {
        const req = httpRequest(`${server.url}/v2/health/live`, { agent: false, headers: { 'X-Huge': 'x'.repeat(64 * 1024) } }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => done({ code: res.statusCode!, body, type: String(res.headers['content-type']) }));
        });
        req.on('error', fail);
        req.end();
      });
      expect(status).toEqual({ code: 431, body: '{"error":"request headers are too large"}', type: 'application/json' });
      expect((await fetch(`${server.url}/v2/health/live`)).status).toBe(200);
    } finally {
      server.child.kill('SIGTERM');
      await server.exited;
    }
  });
});
