/**
 * A function with versions behind the real nginx gateway config (the local nginx binary, as
 * test/gateway-encoding.test.ts runs it), one real function server per version as each
 * version's containers run them (MODELFN_VERSION): nginx's split_clients puts a traffic key on
 * the version embedded mode picks (runtime/function/traffic.ts), splits 80/20, reaches each
 * version on its versioned paths, and mirrors the shadow's share without the client seeing it.
 */
import type { ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nginxConfig } from '../builder/render/nginx.ts';
import { deploymentUnits, serviceName } from '../builder/policy.ts';
import { resolveFunction } from '../runtime/function/discover.ts';
import type { FunctionStats } from '../runtime/core/stats.ts';
import { chooseVersion } from '../runtime/function/traffic.ts';
import { startFunction, type RunningFunction } from '../runtime/serve/server.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { installedNginx, runInstalledNginx, stopNginx } from './nginx.ts';

const NGINX = installedNginx('versions through nginx (test/gateway-versions.test.ts)');

const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };
const SPLIT = [{ version: '1', percent: 80 }, { version: '2', percent: 20 }];

describe.runIf(NGINX)('a function with versions through nginx', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelfn-gateway-versions-'));
  chmodSync(dir, 0o755);
  let url = '';
  let nginx: ChildProcess | undefined;
  const servers = new Map<string, RunningFunction>();

  beforeAll(async () => {
    const fnDir = join(dir, 'flowers');
    for (const v of ['1', '2', '3']) {
      mkdirSync(join(fnDir, v), { recursive: true });
      copyFileSync(join(ROOT, 'functions/iris/model.onnx'), join(fnDir, v, 'model.onnx'));
    }
    const declaration = { traffic: { '1': 80, '2': 20 }, shadow: { '3': 50 } };
    const fn = await resolveFunction(fnDir, declaration, undefined, testConfig());
    // Each version on its own loopback port, as each version's service is on its own host name;
    // every version is each one's peer, as MODELFN_PEERS names every version's service (builder/policy.ts).
    const ports = new Map<string, number>();
    for (const unit of deploymentUnits(fn)) ports.set(serviceName(unit), await freePort());
    const peers = [...ports.values()].map((port) => `127.0.0.1:${port}`).join(',');
    for (const unit of deploymentUnits(fn)) {
      const config = testConfig({ PORT: String(ports.get(serviceName(unit))), MODELFN_VERSION: unit.version, MODELFN_PEERS: peers });
      servers.set(unit.version, await startFunction(fn, config, memoryLogger()));
    }
    const listenPort = await freePort();
    let conf = nginxConfig([fn], { mode: 'vip', serviceHost: (unit) => `${serviceName(unit)}.test`, functionPort: 8080, listenPort })
      .replace(`listen ${listenPort} default_server;`, `listen 127.0.0.1:${listenPort} default_server;`);
    for (const [service, port] of ports) conf = conf.replace(`server ${service}.test:8080 `, `server 127.0.0.1:${port} `);
    expect(conf).not.toContain('.test:8080');
    url = `http://127.0.0.1:${listenPort}`;
    nginx = await runInstalledNginx(NGINX!, conf, dir, url);
    expect((await fetch(`${url}/v2/models/flowers/versions/1/ready`)).status, readFileSync(join(dir, 'nginx.log'), 'utf8')).toBe(200);
  });

  afterAll(async () => {
    await stopNginx(nginx);
    for (const s of servers.values()) await s.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const versionOf = async (res: Response) => {
    expect(res.status).toBe(200);
    const header = res.headers.get('x-modelfn-version');
    await res.arrayBuffer();
    return header;
  };

  it('splits 1,000 unversioned requests 80/20 within 7 points, on the protocol path and the prefix route alike', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const path = i % 2 ? '/v2/models/flowers/infer' : '/flowers/v2/models/flowers/infer';
      const v = (await versionOf(await fetch(`${url}${path}`, postJson(FLOWER))))!;
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['1', '2']);
    // sd of 1,000 draws of 20%: 12.6, so 7 points is 5.5 sd.
    expect(Math.abs(counts['2'] / 1000 - 0.2)).toBeLessThan(0.07);
  });

  it('puts each traffic key on the version embedded mode picks for it', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const key = `user-${i}`;
      const expected = chooseVersion(SPLIT, key)!;
      seen.add(expected);
      expect(await versionOf(await fetch(`${url}/flowers/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, { 'X-Modelfn-Traffic-Key': key }))), key).toBe(expected);
    }
    expect([...seen].sort()).toEqual(['1', '2']);
  });

  it('reaches version N on its versioned paths every time, the shadow too', async () => {
    for (const v of ['1', '2', '3']) {
      for (let i = 0; i < 10; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/versions/${v}/infer`, postJson(FLOWER)))).toBe(v);
    }
  });

  it("answers each version's figures at /flowers/stats with the split nginx runs, whichever version is asked", async () => {
    const read = async (headers: Record<string, string> = {}) => (await (await fetch(`${url}/flowers/stats`, { headers })).json()) as FunctionStats;
    const before = await read();
    for (const [v, n] of [['1', 4], ['2', 7], ['3', 2]] as const) {
      for (let i = 0; i < n; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/versions/${v}/infer`, postJson(FLOWER)))).toBe(v);
    }
    // The gathering is kept a second: wait it out.
    await new Promise((r) => setTimeout(r, 1100));
    // A client's own split header is replaced by the gateway's.
    const res = await fetch(`${url}/flowers/stats`, { headers: { 'X-Modelfn-Split': 'traffic 1=1 2=99; shadow none', 'Accept-Encoding': 'gzip' } });
    // Never compressed, however large: nginx's page lookup reads it as text.
    expect([res.headers.get('content-encoding'), res.headers.get('cache-control')]).toEqual([null, 'no-store, no-transform']);
    const stats = (await res.json()) as FunctionStats;
    expect(stats).toMatchObject({ name: 'flowers', state: 'ready', replicas: 3, readyReplicas: 3 });
    expect(stats.versions!.map((v) => [v.version, v.traffic, v.shadow, v.replicas, v.window.requests - before.versions!.find((b) => b.version === v.version)!.window.requests]))
      .toEqual([['1', 80, undefined, 1, 4], ['2', 20, undefined, 1, 7], ['3', 0, 50, 1, 2]]);
    for (const v of stats.versions!) expect(v.requestsPerSecond, v.version).toBeGreaterThan(0);
    // The function's own figures leave the shadow's copies out.
    expect(stats.window.requests - before.window.requests).toBe(11);
  });

  it('mirrors about half of the split\'s requests to the shadow: counted there, never answering the client', async () => {
    const shadowRuns = async () => {
      const text = await (await fetch(`${servers.get('3')!.url}/metrics`)).text();
      return Number(/^modelfn_inference_duration_seconds_count\{version="3",model="flowers"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = await shadowRuns();
    for (let i = 0; i < 300; i++) expect(await versionOf(await fetch(`${url}/flowers/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] })))).not.toBe('3');
    let copies = 0;
    for (let i = 0; i < 50 && (copies = (await shadowRuns()) - before) < 120; i++) await new Promise((r) => setTimeout(r, 20));
    expect(copies).toBeGreaterThan(110);
    expect(copies).toBeLessThan(190);
  });
});
