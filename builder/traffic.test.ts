import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveDeclaration } from '../runtime/function/check.ts';
import { figuresBetween, liveGatewayConfig, sampleOf, splitInForce } from './docker/traffic.ts';
import { nginxConfig } from './render/nginx.ts';
import { swarmGatewayConfig } from './render/swarm.ts';
import { applyOverrides, loadOverrides, overridesFile, parseTrafficArgs, saveOverrides } from './traffic.ts';

const config = { bodyLimit: 1024 * 1024, timeoutMs: 30_000 };
const versions = ['1', '2', '3'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
const flowers = resolveDeclaration({ traffic: { '1': 80, '2': 20 }, shadow: { '3': 50 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);

describe('modelfn traffic arguments', () => {
  it('reads <version>=<percent> in version order, a version not named getting nothing', () => {
    expect(parseTrafficArgs(flowers, ['2=100'])).toEqual([{ version: '2', percent: 100 }]);
    expect(parseTrafficArgs(flowers, ['2=100', '1=0'])).toEqual([{ version: '1', percent: 0 }, { version: '2', percent: 100 }]);
    expect(parseTrafficArgs(flowers, ['2=33.33%', '1=66.67'])).toEqual([{ version: '1', percent: 66.67 }, { version: '2', percent: 33.33 }]);
  });

  it('refuses what a declaration would refuse, in one line naming it', () => {
    const refused: [string[], string][] = [
      [['1=50', '2=40'], 'flowers: traffic: percentages must sum to 100, got 90'],
      [['4=100'], "flowers: traffic.4: no version '4' (versions: 1, 2, 3)"],
      [['1=99.999', '2=0.001'], 'flowers: traffic.1: at most two decimals, got 99.999'],
      [['2'], "'2': expected <version>=<percent>, e.g. 2=100"],
      [['2='], "'2=': the percent must be a number from 0 to 100"],
      [['2=-5', '1=105'], "'2=-5': the percent must be a number from 0 to 100"],
      [['2=50', '2=50'], "'2=50': version 2 is named twice"],
      [['1=50', '3=50'], 'flowers: version 3 is the shadow; a shadow only gets copies of requests'],
    ];
    for (const [args, message] of refused) expect(parseTrafficArgs(flowers, args)).toBe(message);
  });
});

describe('the store of live changes', () => {
  const root = mkdtempSync(join(tmpdir(), 'modelfn-traffic-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('keeps a project\'s changes in dist/traffic/<project>.json, and removes the file when none is left', () => {
    expect(loadOverrides(root, 'p1')).toEqual({});
    saveOverrides(root, 'p1', { flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100 } } });
    expect(overridesFile(root, 'p1')).toBe(join(root, 'dist/traffic/p1.json'));
    expect(loadOverrides(root, 'p1')).toEqual({ flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100 } } });
    expect(loadOverrides(root, 'p2')).toEqual({});
    saveOverrides(root, 'p1', {});
    expect(existsSync(overridesFile(root, 'p1'))).toBe(false);
  });

  it('names the file when it is not the JSON it writes', () => {
    mkdirSync(join(root, 'dist/traffic'), { recursive: true });
    writeFileSync(overridesFile(root, 'bad'), '{');
    expect(() => loadOverrides(root, 'bad')).toThrow(`${overridesFile(root, 'bad')}: not the JSON modelfn traffic writes`);
  });

  it('applies a change while the declared split is the one it replaced, and drops it once the declaration changes', () => {
    const change = { flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100, 3: 0 } } };
    const applied = applyOverrides([flowers], change);
    expect(applied.functions[0].traffic).toEqual([{ version: '1', percent: 0 }, { version: '2', percent: 100 }, { version: '3', percent: 0 }]);
    expect(applied.kept).toEqual(change);
    expect(applied.dropped).toEqual([]);
    const redeclared = resolveDeclaration({ traffic: { '1': 50, '2': 50 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    expect(applyOverrides([redeclared], change)).toEqual({ functions: [redeclared], kept: {}, dropped: ['flowers'] });
    expect(applyOverrides([], change).dropped).toEqual(['flowers']);
  });

  it('writes the gateway config with the change, and forgets a stale one in the store', () => {
    saveOverrides(root, 'live', { flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 10, 2: 90 } } });
    const logged: string[] = [];
    const conf = liveGatewayConfig([flowers], root, 'live', (l) => logged.push(l));
    expect(splitInForce(conf, 'flowers')).toEqual([{ version: '1', percent: 10 }, { version: '2', percent: 90 }]);
    expect(splitInForce(nginxConfig([flowers], { mode: 'dns' }), 'flowers')).toEqual([{ version: '1', percent: 80 }, { version: '2', percent: 20 }]);
    expect(logged).toEqual(['  ✓ traffic: flowers keeps the split set by modelfn traffic: 1=10 2=90']);
    const redeclared = resolveDeclaration({ traffic: { '1': 50, '2': 50 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    expect(splitInForce(liveGatewayConfig([redeclared], root, 'live'), 'flowers')).toEqual([{ version: '1', percent: 50 }, { version: '2', percent: 50 }]);
    expect(existsSync(overridesFile(root, 'live'))).toBe(false);
  });

  it("keeps a Swarm stack's changes apart from a compose project of the same name, and renders its gateway's Swarm config", () => {
    saveOverrides(root, 'same', { flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100 } } }, 'swarm');
    expect(overridesFile(root, 'same', 'swarm')).toBe(join(root, 'dist/traffic/swarm/same.json'));
    expect(loadOverrides(root, 'same')).toEqual({});
    const logged: string[] = [];
    const conf = liveGatewayConfig([flowers], root, 'same', (l) => logged.push(l), 'swarm');
    expect(splitInForce(conf, 'flowers')).toEqual([{ version: '1', percent: 0 }, { version: '2', percent: 100 }]);
    expect(conf).toBe(swarmGatewayConfig([{ ...flowers, traffic: [{ version: '1', percent: 0 }, { version: '2', percent: 100 }] }]));
    expect(logged).toEqual(['  ✓ traffic: flowers keeps the split set by modelfn traffic (stack same): 1=0 2=100']);
    // The compose render of the same project is the declared one.
    expect(splitInForce(liveGatewayConfig([flowers], root, 'same'), 'flowers')).toEqual([{ version: '1', percent: 80 }, { version: '2', percent: 20 }]);
  });
});

describe('per-version figures from Prometheus text', () => {
  const text = (ok: number, failed: number, fast: number, slow: number) => [
    `modelfn_http_requests_total{version="2",method="POST",route="/v2/models/flowers/infer",status="200",ok="true"} ${ok}`,
    `modelfn_http_requests_total{version="2",method="POST",route="/v2/models/flowers/infer",status="500",ok="false"} ${failed}`,
    'modelfn_http_requests_total{version="2",method="GET",route="/metrics",status="200",ok="true"} 99',
    `modelfn_http_request_duration_seconds_bucket{le="0.01",version="2",method="POST",route="/v2/models/flowers/infer",status="200",ok="true"} ${fast}`,
    `modelfn_http_request_duration_seconds_bucket{le="0.1",version="2",method="POST",route="/v2/models/flowers/infer",status="200",ok="true"} ${fast + slow}`,
    `modelfn_http_request_duration_seconds_bucket{le="+Inf",version="2",method="POST",route="/v2/models/flowers/infer",status="200",ok="true"} ${fast + slow}`,
  ].join('\n');

  it('counts the function\'s routes, not /metrics, and turns two samples into rates and a p99', () => {
    expect(sampleOf(text(10, 1, 10, 0))).toMatchObject({ requests: 11, errors: 1 });
    const figures = figuresBetween(sampleOf(text(10, 1, 10, 0)), sampleOf(text(210, 5, 110, 100)), 2);
    expect(figures.requestsPerSecond).toBe(102);
    expect(figures.errorsPerSecond).toBe(2);
    expect(figures.p99Ms).toBeGreaterThan(90);
    expect(figures.p99Ms).toBeLessThanOrEqual(100);
    expect(figuresBetween(sampleOf(''), sampleOf(''), 2)).toEqual({ requestsPerSecond: 0, errorsPerSecond: 0, p99Ms: null });
  });
});
