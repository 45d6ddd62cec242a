/**
 * Compression and 64-bit integers through the real nginx gateway, run from the generated
 * config on loopback addresses (no Docker): two functions behind it, the conformance suite
 * through it, and the raw bytes on the wire (nginx neither compresses twice nor drops the
 * coding).
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxConfig } from '../builder/render/nginx.ts';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { loadFunctionDir, resolveFunction } from '../runtime/function/discover.ts';
import { startFunction, type RunningFunction } from '../runtime/serve/server.ts';
import { FIXTURES, ROOT, compressionBomb, conformanceSuite, errorOf, memoryLogger, testConfig } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { installedNginx, runInstalledNginx, stopNginx } from './nginx.ts';

const NGINX = installedNginx('compression through nginx (test/gateway-encoding.test.ts)');

/** The raw answer, bytes as they came over the wire (fetch would decode them). */
function raw(url: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer }): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((done, fail) => {
    const req = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    req.end(init.body);
  });
}

describe.runIf(NGINX)('compression and 64-bit integers through nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelfn-gateway-encoding-'));
  // nginx's workers (nobody) look for static files under it: a 0700 folder would be a 403.
  chmodSync(dir, 0o755);
  // Each function on its own loopback address, all on one port, as containers are on theirs.
  const HOSTS: Record<string, string> = { iris: '127.0.0.2', datatypes: '127.0.0.3' };
  let url = '';
  let nginx: ChildProcess | undefined;
  const running: RunningFunction[] = [];
  let ready: () => void;
  const started = new Promise<void>((r) => (ready = r));

  beforeAll(async () => {
    const functionPort = await freePort();
    const listenPort = await freePort();
    const fns: ResolvedFunction[] = [];
    for (const name of Object.keys(HOSTS)) {
      const config = testConfig({ PORT: String(functionPort), MODELFN_HOST: HOSTS[name] });
      const fn = name === 'iris'
        ? await loadFunctionDir(resolve(ROOT, 'functions/iris'), config)
        : await resolveFunction(FIXTURES, { name: 'datatypes', model: 'datatypes.onnx' }, undefined, config);
      fns.push(fn);
      running.push(await startFunction(fn, config, memoryLogger()));
    }
    const conf = nginxConfig(fns, { mode: 'vip', serviceHost: (fn) => HOSTS[fn.name], functionPort, listenPort })
      .replace(`listen ${listenPort} default_server;`, `listen 127.0.0.1:${listenPort} default_server;`);
    expect(conf).toMatch(/^\s*gzip off;$/m);
    url = `http://127.0.0.1:${listenPort}`;
    nginx = await runInstalledNginx(NGINX!, conf, dir, url);
    expect((await fetch(`${url}/v2/models/iris/ready`)).status, readFileSync(join(dir, 'nginx.log'), 'utf8')).toBe(200);
    expect((await fetch(`${url}/v2/models/datatypes/ready`)).status, readFileSync(join(dir, 'nginx.log'), 'utf8')).toBe(200);
    ready();
  });

  afterAll(async () => {
    await stopNginx(nginx);
    for (const r of running) await r.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const name of ['iris', 'datatypes']) {
    conformanceSuite(`${name} through nginx`, async () => {
      await started;
      return { name, request: (path, init) => fetch(path === '/metrics' ? `${url}/${name}/metrics` : `${url}${path}`, init) };
    });
  }

  it('passes one gzip layer from the function to the client, with Vary, JSON and binary', async () => {
    const rows = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [50, 4], data: new Array(200).fill(1) }] });
    const plain = await raw(`${url}/v2/models/iris/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: Buffer.from(rows) });
    expect(plain.headers['content-encoding']).toBeUndefined();
    for (const path of ['/v2/models/iris/infer', '/iris/v2/models/iris/infer']) {
      const res = await raw(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Accept-Encoding': 'gzip' }, body: Buffer.from(rows) });
      expect(res.headers['content-encoding']).toBe('gzip');
      expect(res.headers.vary).toBe('Accept-Encoding');
      expect(res.body.length).toBeLessThan(plain.body.length);
      expect(gunzipSync(res.body).toString()).toBe(plain.body.toString());
    }
    const binaryHeader = Buffer.from(JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [50, 4], parameters: { binary_data_size: 800 } }], parameters: { binary_data_output: true } }));
    const binaryBody = Buffer.concat([binaryHeader, Buffer.from(new Float32Array(200).fill(1).buffer)]);
    const binary = await raw(`${url}/v2/models/iris/infer`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(binaryHeader.length), 'Content-Encoding': 'gzip', 'Accept-Encoding': 'gzip' },
      body: gzipSync(binaryBody),
    });
    expect(binary.status).toBe(200);
    expect(binary.headers['content-encoding']).toBe('gzip');
    const decoded = gunzipSync(binary.body);
    const length = Number(binary.headers['inference-header-content-length']);
    expect(JSON.parse(decoded.subarray(0, length).toString()).outputs[0]).toEqual({ name: 'probabilities', datatype: 'FP32', shape: [50, 3], parameters: { binary_data_size: 600 } });
    expect(decoded.length).toBe(length + 600 + 400);
  });

  it("decodes compressed bodies on a function's own route behind nginx, and refuses a bomb there with the function's 413", async () => {
    const species = await fetch(`${url}/iris/species`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: gzipSync(JSON.stringify({ flowers: [[6.7, 3.0, 5.2, 2.3]] })) });
    expect(((await species.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const bomb = await fetch(`${url}/iris/species`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: compressionBomb() as BodyInit });
    expect(await errorOf(bomb)).toEqual({ status: 413, error: "request body is larger than the limit of 10485760 bytes for 'iris' once decompressed" });
  });

  it('carries INT64 and UINT64 at their limits through nginx digit for digit', async () => {
    const body = (await (await fetch(`${url}/v2/models/datatypes/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"inputs":[]}' })).json()) as { error: string };
    expect(body.error).toMatch(/missing input/);
    const meta = (await (await fetch(`${url}/v2/models/datatypes`)).json()) as { inputs: { name: string; datatype: string }[] };
    const filler = (datatype: string) => JSON.stringify(new Array(3).fill(datatype === 'BOOL' ? false : datatype === 'BYTES' ? '' : 0));
    const data: Record<string, string> = { INT64: '[-9223372036854775808,9223372036854775807,9007199254740993]', UINT64: '[18446744073709551615,9007199254740993,0]' };
    const inputs = meta.inputs.map((t) => `{"name":"${t.name}","datatype":"${t.datatype}","shape":[1,3],"data":${data[t.datatype] ?? filler(t.datatype)}}`);
    const res = await raw(`${url}/v2/models/datatypes/infer`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'Content-Encoding': 'gzip' }, body: gzipSync(`{"inputs":[${inputs.join(',')}],"outputs":[{"name":"out_int64"},{"name":"out_uint64"}]}`) });
    expect(res.status).toBe(200);
    const text = res.body.toString();
    expect(text).toContain(`"name":"out_int64","datatype":"INT64","shape":[1,3],"data":${data.INT64}`);
    expect(text).toContain(`"name":"out_uint64","datatype":"UINT64","shape":[1,3],"data":${data.UINT64}`);
  });
});
