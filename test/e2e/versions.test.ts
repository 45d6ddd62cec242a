/**
 * A function with versions on the real Docker engine: built into one image, each version its own
 * compose service, behind the generated nginx gateway on 127.0.0.1. The split holds over 1,000
 * requests, versioned paths reach their version, a traffic key keeps its version, the shadow gets
 * its share without the client seeing it, and down leaves nothing.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackDown } from '../../builder/docker/compose.ts';
import { runStack } from '../../builder/docker/stack.ts';
import type { FunctionStats } from '../../runtime/core/stats.ts';
import { chooseVersion } from '../../runtime/function/traffic.ts';
import { ROOT, postJson } from '../../runtime/testing/index.ts';
import { docker, dockerAvailable, projectLeftovers } from '../docker.ts';
import { FLOWER, flowersStack } from './flowers-stack.ts';

const available = dockerAvailable('versions on compose (test/e2e/versions.test.ts)');

describe.runIf(available)('a function with versions on the compose stack', () => {
  const iris = join(ROOT, 'functions/iris/model.onnx');
  const flowers = flowersStack('versions', { 1: iris, 2: iris, 3: iris }, "export default { traffic: { '1': 80, '2': 20 }, shadow: { '3': 50 } };\n");
  const { project, root, cli } = flowers;

  beforeAll(() => flowers.up(), 600_000);
  afterAll(() => flowers.teardown(), 120_000);

  const versionOf = async (res: Response) => {
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    return res.headers.get('x-modelfn-version')!;
  };

  it('runs each version as its own service', () => {
    const services = docker(['ps', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Label "com.docker.compose.service"}}']).trim().split('\n').sort();
    expect(services).toEqual(['flowers-v1', 'flowers-v2', 'flowers-v3', 'gateway']);
  });

  it('splits 1,000 unversioned requests 80/20 within 7 points, the shadow answering none', async () => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < 1000; i++) {
      const v = await versionOf(await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER)));
      counts[v] = (counts[v] ?? 0) + 1;
    }
    expect(Object.keys(counts).sort()).toEqual(['1', '2']);
    // sd of 1,000 draws of 20%: 12.6, so 7 points is 5.5 sd.
    expect(Math.abs(counts['2'] / 1000 - 0.2)).toBeLessThan(0.07);
  });

  it('reaches each version on its versioned paths every time, and keeps a traffic key on the version npm start picks', async () => {
    for (const v of ['1', '2', '3']) {
      for (let i = 0; i < 20; i++) expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/versions/${v}/infer`, postJson(FLOWER)))).toBe(v);
    }
    for (const key of ['user-1', 'user-42', 'k-7', 'session-xyz']) {
      const expected = chooseVersion([{ version: '1', percent: 80 }, { version: '2', percent: 20 }], key);
      for (let i = 0; i < 5; i++) expect(await versionOf(await fetch(`${flowers.url}/flowers/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, { 'X-Modelfn-Traffic-Key': key })))).toBe(expected);
    }
  });

  it('mirrors about half of the requests to the shadow version, counted in its metrics', async () => {
    // The shadow's metrics, read in its own container (its port is not published).
    const container = docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=flowers-v3']).trim();
    const runs = () => {
      const text = docker(['exec', container, '/usr/local/bin/node', '-e', "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
      return Number(/^modelfn_inference_duration_seconds_count\{version="3",model="flowers"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    };
    const before = runs();
    for (let i = 0; i < 400; i++) expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER)))).not.toBe('3');
    await new Promise((r) => setTimeout(r, 1000));
    const copies = runs() - before;
    expect(copies).toBeGreaterThan(150);
    expect(copies).toBeLessThan(250);
  });

  it('moves the split from 80/20 to 0/100 under load with modelfn traffic, failing no request', async () => {
    const clients = flowers.load(4);
    await new Promise((r) => setTimeout(r, 1500));
    const moved = await cli(['traffic', 'flowers', '1=0', '2=100']);
    const atChange = clients.answers.length;
    await new Promise((r) => setTimeout(r, 1500));
    await clients.stop();
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(/^flowers: traffic 1=0 2=100 in force on 1 gateway of modelfn-e2e-versions-\d+ \(\d+ ms\)/);
    const failed = clients.answers.filter((a) => a.status !== 200);
    expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([]);
    // The load ran through the change: both versions answered before it, requests went on after it.
    expect(new Set(clients.answers.slice(0, atChange).map((a) => a.version))).toEqual(new Set(['1', '2']));
    expect(clients.answers.length - atChange).toBeGreaterThan(20);
    for (let i = 0; i < 200; i++) expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER)))).toBe('2');
    // Versioned paths still reach version 1.
    expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/versions/1/infer`, postJson(FLOWER)))).toBe('1');
    expect(JSON.parse(readFileSync(join(root, 'dist/traffic', `${project}.json`), 'utf8'))).toEqual({ flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100 } } });
  }, 120_000);

  it('prints the split in force and each version\'s request rate, error rate and p99', async () => {
    const clients = flowers.load(2);
    const shown = await cli(['traffic', 'flowers', '--window', '2']);
    await clients.stop();
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trim().split('\n');
    expect(lines[0]).toBe(`flowers on ${project}: traffic 1=0 2=100 (over the last 2 s)`);
    expect(lines[1].split(/\s{2,}/)).toEqual(['version', 'traffic', 'requests/s', 'errors/s', 'p99']);
    const row = (v: string) => lines.find((l) => l.startsWith(`${v} `))!.split(/\s{2,}/);
    expect(row('1').slice(0, 4)).toEqual(['1', '0%', '0', '0']);
    const [, percent, rate, errors, p99] = row('2');
    expect([percent, errors]).toEqual(['100%', '0']);
    expect(Number(rate)).toBeGreaterThan(5);
    expect(p99).toMatch(/^\d+(\.\d+)? ms$/);
    expect(row('3')[1]).toBe('shadow 50%');
    expect(Number(row('3')[2])).toBeGreaterThan(1);
  }, 60_000);

  it("shows the split in force and each version's figures at the gateway: its /stats and the page's live view as nginx sends it", async () => {
    const clients = flowers.load(2);
    await new Promise((r) => setTimeout(r, 2000));
    const res = await fetch(`${flowers.url}/flowers/stats`);
    const stats = (await res.json()) as FunctionStats;
    const page = await (await fetch(`${flowers.url}/`, { headers: { Accept: 'text/html' } })).text();
    await clients.stop();
    expect(res.status).toBe(200);
    // Whichever version's replica the gateway asked gathered every version's (MODELFN_PEERS), told the split nginx runs.
    expect(stats.versions!.map((v) => [v.version, v.traffic, v.shadow, v.state, v.replicas])).toEqual([['1', 0, undefined, 'ready', 1], ['2', 100, undefined, 'ready', 1], ['3', 0, 50, 'ready', 1]]);
    expect(stats.versions![1].requestsPerSecond).toBeGreaterThan(1);
    expect(stats.versions![2].requestsPerSecond).toBeGreaterThan(0);
    expect(stats.versions![1].latencyMs.p99).toBeGreaterThan(0);
    // The page in the gateway's image was built with the declared 80/20: nginx filled in the split in force as it sent it.
    expect([...page.matchAll(/<tr data-live-version="flowers" data-version="(\d)"[^]*?data-field="share" class="share">([^<]*)<[^]*?class="state state-(\w+)"/g)].map((m) => m.slice(1)))
      .toEqual([['1', '0%', 'ready'], ['2', '100%', 'ready'], ['3', 'shadow 50%', 'ready']]);
  }, 60_000);

  it('refuses a split that is not one in one line, changing nothing', async () => {
    for (const [args, message] of [
      [['1=50', '2=40'], 'modelfn traffic: flowers: traffic: percentages must sum to 100, got 90'],
      [['4=100'], "modelfn traffic: flowers: traffic.4: no version '4' (versions: 1, 2, 3)"],
      [['2=100', '3=0', '1=x'], "modelfn traffic: '1=x': the percent must be a number from 0 to 100"],
    ] as const) {
      const refused = await cli(['traffic', 'flowers', ...args]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toBe(`${message}\n`);
    }
    for (let i = 0; i < 20; i++) expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER)))).toBe('2');
  }, 60_000);

  /** npm run up again (what `modelfn up` runs, in this process): its output. */
  const upAgain = async () => {
    const lines: string[] = [];
    const code = await runStack('up', { root, log: (l) => lines.push(l) });
    expect(code, lines.join('\n')).toBe(0);
    return `${lines.join('\n')}\n`;
  };

  /** The volumes of the gateway container(s), its live nginx.conf among them. */
  const gatewayVolumes = () => {
    const ids = docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=gateway']).trim().split('\n').filter(Boolean);
    return ids.length ? docker(['inspect', ...ids, '--format', '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}']).trim().split(/\s+/).filter(Boolean) : [];
  };
  const volumesLeft = (names: string[]) => names.filter((name) => docker(['volume', 'ls', '-q']).split('\n').includes(name));
  let lastGatewayVolumes: string[] = [];

  it('keeps the changed split through up again, leaving no volume of the replaced gateway', async () => {
    const first = gatewayVolumes();
    expect(first).toHaveLength(1);
    expect(await upAgain()).toContain('  ✓ traffic: flowers keeps the split set by modelfn traffic: 1=0 2=100\n');
    for (let i = 0; i < 100; i++) expect(await versionOf(await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER)))).toBe('2');
    lastGatewayVolumes = gatewayVolumes();
    expect(lastGatewayVolumes).toHaveLength(1);
    expect(lastGatewayVolumes).not.toEqual(first);
    expect(volumesLeft(first)).toEqual([]);
  }, 600_000);

  it('leaves nothing after down', async () => {
    await stackDown(flowers.options());
    flowers.down = true;
    expect(projectLeftovers(project)).toBe('');
    // The gateway's anonymous volume carries no project label: looked for by name.
    expect(volumesLeft(lastGatewayVolumes)).toEqual([]);
  });
});
