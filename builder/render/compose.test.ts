// The compose renderer alone: functions in, docker-compose.yml out.
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { resolveDeclaration } from '../../runtime/function/check.ts';
import { GENERATED_HEADER } from '../policy.ts';
import { composeDocument, composeFile } from './compose.ts';

const config = { bodyLimit: 1024 * 1024, timeoutMs: 30_000 };
const declare = (folderName: string, declaration: object) => resolveDeclaration(declaration, { dir: `/nowhere/${folderName}`, folderName }, config);
const functions = [
  declare('alpha', { replicas: 3, limits: { bodySize: 2048, timeoutMs: 12_500 } }),
  declare('locked', { auth: { apiKeys: 'locked-keys' } }),
];

describe('composeFile', () => {
  const doc = parse(composeFile(functions)) as { services: Record<string, any>; secrets?: Record<string, any> };

  it('starts with the generated-file header', () => {
    expect(composeFile(functions).split('\n')[0]).toBe(GENERATED_HEADER);
  });

  it('gives each function its limits, replicas, grace period and a hardened container', () => {
    const alpha = doc.services.alpha;
    expect(alpha.environment).toEqual({ MODELFN_BODY_LIMIT: '2048', MODELFN_TIMEOUT_MS: '12500', MODELFN_ACCESS_LOG: 'false', MODELFN_PEERS: 'alpha:8080' });
    expect(alpha.deploy).toEqual({ replicas: 3, resources: { limits: { cpus: '2', memory: '512M' } } });
    expect(alpha.stop_grace_period).toBe('18s');
    expect(alpha).toMatchObject({ user: '65532:65532', read_only: true, init: true, cap_drop: ['ALL'], security_opt: ['no-new-privileges:true'], expose: ['8080'] });
    expect(alpha.healthcheck).toEqual({ test: ['CMD', '/usr/local/bin/node', '/app/healthcheck.mjs'], interval: '5s', timeout: '3s', retries: 3, start_period: '10s' });
  });

  it('names images by a tag read when the stack starts, or by the tag given', () => {
    expect(doc.services.alpha.image).toBe('modelfn/alpha:${MODELFN_IMAGE_TAG:-latest}');
    expect(doc.services.gateway.image).toBe('modelfn/gateway:${MODELFN_IMAGE_TAG:-latest}');
    const tagged = composeDocument(functions, { tag: 'v3' }) as { services: Record<string, any> };
    expect(tagged.services.alpha.image).toBe('modelfn/alpha:v3');
  });

  it('publishes the gateway on 127.0.0.1:8080 unless MODELFN_HOST/MODELFN_PORT say otherwise, once every function is healthy', () => {
    expect(doc.services.gateway.ports).toEqual(['${MODELFN_HOST:-127.0.0.1}:${MODELFN_PORT:-8080}:8080']);
    expect(doc.services.gateway.depends_on).toEqual({ alpha: { condition: 'service_healthy' }, locked: { condition: 'service_healthy' } });
  });

  it('hands API keys to the function that asks for them as a secret file', () => {
    expect(doc.services.locked.secrets).toEqual(['locked-keys']);
    expect(doc.services.alpha.secrets).toBeUndefined();
    expect(doc.secrets).toEqual({ 'locked-keys': { file: './secrets/locked-keys' } });
    expect((parse(composeFile([functions[0]])) as { secrets?: unknown }).secrets).toBeUndefined();
  });
});

describe('composeFile for a function with versions', () => {
  const versions = ['1', '2'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
  const flowers = resolveDeclaration({ replicas: 2, traffic: { '1': 80, '2': 20 }, versions: { '1': { limits: { timeoutMs: 5000 }, replicas: 1 } } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
  const doc = parse(composeFile([flowers, functions[0]])) as { services: Record<string, any> };

  it('runs each version as its own service from the function\'s image, told its version, with its own limits and replicas', () => {
    expect(Object.keys(doc.services)).toEqual(['flowers-v1', 'flowers-v2', 'alpha', 'gateway']);
    expect(doc.services['flowers-v1'].image).toBe('modelfn/flowers:${MODELFN_IMAGE_TAG:-latest}');
    expect(doc.services['flowers-v1'].environment).toEqual({ MODELFN_VERSION: '1', MODELFN_BODY_LIMIT: '1048576', MODELFN_TIMEOUT_MS: '5000', MODELFN_ACCESS_LOG: 'false', MODELFN_PEERS: 'flowers-v1:8080,flowers-v2:8080' });
    // Every version's service is a peer: /stats gathers each version's figures from whichever replica is asked.
    expect(doc.services['flowers-v2'].environment).toMatchObject({ MODELFN_VERSION: '2', MODELFN_TIMEOUT_MS: '30000', MODELFN_PEERS: 'flowers-v1:8080,flowers-v2:8080' });
    expect(doc.services['flowers-v2'].deploy.replicas).toBe(2);
    expect(doc.services['flowers-v1'].deploy.replicas).toBe(1);
    expect(Object.keys(doc.services.gateway.depends_on)).toEqual(['flowers-v1', 'flowers-v2', 'alpha']);
  });

  it("scales a version on its own: its service alone gets the control port, the activator's spec under its service's name, and is not waited for", () => {
    const rollback = resolveDeclaration({ replicas: 2, traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 60 } } } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, config);
    const scaled = parse(composeFile([rollback])) as { services: Record<string, any> };
    expect(Object.keys(scaled.services)).toEqual(['flowers-v1', 'flowers-v2', 'activator', 'gateway']);
    expect(scaled.services['flowers-v1'].environment).toMatchObject({ MODELFN_VERSION: '1', MODELFN_CONTROL_PORT: '9090', MODELFN_CONTROL_FROM: 'activator' });
    expect(scaled.services['flowers-v1'].expose).toEqual(['8080', '9090']);
    expect(scaled.services['flowers-v1'].deploy.replicas).toBe(1);
    expect(scaled.services['flowers-v2'].environment.MODELFN_CONTROL_PORT).toBeUndefined();
    expect(scaled.services['flowers-v2'].deploy.replicas).toBe(2);
    expect(JSON.parse(scaled.services.activator.environment.MODELFN_SCALED_FUNCTIONS)).toEqual([
      { name: 'flowers-v1', prefix: '/flowers', min: 0, max: 1, idleSeconds: 60, wake: 'start', concurrency: 32, timeoutMs: 30_000, bodySize: 1024 * 1024 },
    ]);
    expect(scaled.services.gateway.depends_on).toEqual({ 'flowers-v2': { condition: 'service_healthy' }, activator: { condition: 'service_healthy' } });
  });
});
