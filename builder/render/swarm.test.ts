// The swarm renderer alone: functions in, the stack file and its gateway config out.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolveDeclaration } from '../../runtime/function/check.ts';
import { FUNCTION_LABEL, GATEWAY_CONFIG_LABEL, GATEWAY_LIVE, VERSION_LABEL } from '../policy.ts';
import { nginxConfig } from './nginx.ts';
import { stackDocument, stackFile, swarmGatewayConfig } from './swarm.ts';

const config = { bodyLimit: 1024 * 1024, timeoutMs: 30_000 };
const declare = (folderName: string, declaration: object) => resolveDeclaration(declaration, { dir: `/nowhere/${folderName}`, folderName }, config);
const functions = [declare('alpha', { replicas: 2, limits: { timeoutMs: 61_000 } }), declare('beta', {})];

describe('swarmGatewayConfig', () => {
  it("is compose's dns config rendered with Swarm's one-second DNS answers, nothing else changed", () => {
    const swarm = swarmGatewayConfig(functions);
    const compose = nginxConfig(functions, { mode: 'dns' });
    expect(swarm).toContain('resolver 127.0.0.11 valid=1s ipv6=off;');
    expect(swarm).toContain('# Discovery: dns, answers kept 1 s (Docker Swarm)\n');
    const differing = swarm.split('\n').filter((line, i) => line !== compose.split('\n')[i]);
    expect(differing).toEqual(['# Discovery: dns, answers kept 1 s (Docker Swarm)', '    resolver 127.0.0.11 valid=1s ipv6=off;']);
  });

  it('waits longer than compose to connect to a scaled replica, which may be on another machine', () => {
    const scaled = [declare('sleepy', { scale: { min: 0 } })];
    const connect = (conf: string) => [...conf.matchAll(/proxy_connect_timeout (\S+);/g)].map((m) => m[1]);
    expect(new Set(connect(swarmGatewayConfig(scaled)))).toEqual(new Set(['2s', '100ms']));
    expect(new Set(connect(nginxConfig(scaled, { mode: 'dns', activator: 'activator' })))).toEqual(new Set(['2s', '10ms']));
  });
});

describe('stackFile', () => {
  const doc = parse(stackFile(functions)) as { services: Record<string, any>; configs?: Record<string, any> };

  it('resolves function services to their tasks (dnsrr), labelled, rolled one at a time start-first', () => {
    const alpha = doc.services.alpha;
    expect(alpha.deploy).toMatchObject({ replicas: 2, endpoint_mode: 'dnsrr', labels: { [FUNCTION_LABEL]: 'alpha' } });
    expect(alpha.deploy.update_config).toMatchObject({ parallelism: 1, order: 'start-first', failure_action: 'rollback' });
    expect(alpha.deploy.resources).toEqual({ limits: { cpus: '2', memory: '512M' }, reservations: { cpus: '0.1', memory: '128M' } });
    expect(alpha.stop_grace_period).toBe('66s');
    expect(alpha.image).toBe('modelfn/alpha:${MODELFN_IMAGE_TAG:-latest}');
  });

  it("runs the gateway from the image's swarm.conf in a volume modelfn traffic writes, labelled with a hash that changes with the config", () => {
    const gateway = doc.services.gateway;
    expect(gateway.command).toEqual(['nginx', '-c', GATEWAY_LIVE.swarmFile, '-g', 'daemon off;']);
    expect(gateway.volumes).toContainEqual({ type: 'volume', target: GATEWAY_LIVE.dir });
    expect(gateway.read_only).toBe(true);
    // No swarm config: one could not change in place.
    expect(gateway.configs).toBeUndefined();
    expect(doc.configs).toBeUndefined();
    const hash = gateway.labels[GATEWAY_CONFIG_LABEL];
    expect(hash).toMatch(/^[0-9a-f]{12}$/);
    const labelOf = (fns: typeof functions) => (stackDocument(fns).services.gateway as { labels: Record<string, string> }).labels[GATEWAY_CONFIG_LABEL];
    expect(labelOf([...functions, declare('gamma', {})])).not.toBe(hash);
    expect(labelOf(functions)).toBe(hash);
  });

  it('publishes the gateway in host mode on MODELFN_PORT', () => {
    expect(doc.services.gateway.ports).toEqual([{ target: 8080, published: '${MODELFN_PORT:-8080}', protocol: 'tcp', mode: 'host' }]);
  });
});

describe('stackFile for a function with versions', () => {
  it('runs each version as its own labelled service, and its gateway config splits between them', () => {
    const versions = ['1', '2'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
    const flowers = resolveDeclaration({ traffic: { '1': 50, '2': 50 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    const doc = parse(stackFile([flowers])) as { services: Record<string, any> };
    expect(Object.keys(doc.services)).toEqual(['flowers-v1', 'flowers-v2', 'gateway']);
    expect(doc.services['flowers-v2'].deploy.labels).toEqual({ [FUNCTION_LABEL]: 'flowers', [VERSION_LABEL]: '2' });
    expect(doc.services['flowers-v2'].environment.MODELFN_VERSION).toBe('2');
    expect(swarmGatewayConfig([flowers])).toContain('server flowers-v2:8080 resolve');
  });

  it("scales a version on its own: the activator scales that version's service, the others keep their replicas", () => {
    const versions = ['1', '2'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
    const rollback = resolveDeclaration({ traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 60, wake: 'unpause' } } } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    const doc = parse(stackFile([rollback])) as { services: Record<string, any> };
    expect(Object.keys(doc.services)).toEqual(['flowers-v1', 'flowers-v2', 'activator', 'gateway']);
    expect(doc.services['flowers-v1'].environment).toMatchObject({ MODELFN_VERSION: '1', MODELFN_CONTROL_PORT: '9090' });
    expect(doc.services['flowers-v1'].deploy.placement).toEqual({ constraints: ['node.role == manager'] });
    expect(doc.services['flowers-v2'].environment.MODELFN_CONTROL_PORT).toBeUndefined();
    expect(doc.services['flowers-v2'].deploy.placement).toBeUndefined();
    expect(JSON.parse(doc.services.activator.environment.MODELFN_SCALED_FUNCTIONS).map((s: { name: string }) => s.name)).toEqual(['flowers-v1']);
    expect(swarmGatewayConfig([rollback])).toContain('set $modelfn_unit flowers-v1;');
  });
});
