/**
 * The Kubernetes manifests in deploy/k8s: valid against the Kubernetes OpenAPI schemas
 * (kubernetes-models), and faithful to the declarations: the routes of the nginx gateway, the
 * limits, probes, replicas and a pod that the "restricted" Pod Security Standard admits.
 *
 * No cluster runs here. Field names are checked by the typecheck (builder/render/k8s.ts builds typed
 * objects); these tests read the YAML a user applies.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Ingress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { HTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { discoverFunctions } from '../functions.ts';
import { FILES, PRESTOP_SECONDS, TIMEOUT_GRACE_MS } from '../policy.ts';
import { k8sFiles } from './k8s.ts';
import { parseByteSize, readConfig } from '../../runtime/core/config.ts';
import { resolveDeclaration } from '../../runtime/function/check.ts';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { forwardedPath, gatewayRoutes, matchRoute } from '../../runtime/gateway/routes.ts';
import { ROOT } from '../../runtime/testing/index.ts';

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> }; spec?: any };

const SCHEMAS: Record<string, new (data: any) => { validate(): void }> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/Namespace': Namespace,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
  'gateway.networking.k8s.io/v1/HTTPRoute': HTTPRoute,
};

/** Throws the schema's complaint when a manifest is not a valid object of its kind; answers `Kind/name`. */
function validate(m: Manifest): string {
  const Model = SCHEMAS[`${m.apiVersion}/${m.kind}`];
  if (!Model) throw new Error(`${m.kind} ${m.metadata?.name}: no schema for ${m.apiVersion}/${m.kind}`);
  new Model(m).validate();
  return `${m.kind}/${m.metadata.name}`;
}

function manifestsOf(files: Record<string, string>): Manifest[] {
  return Object.entries(files)
    .filter(([path]) => !path.endsWith('/kustomization.yaml'))
    .flatMap(([path, text]) => parseAllDocuments(text).map((doc) => {
      if (doc.errors.length) throw new Error(`${path}: ${doc.errors[0].message}`);
      return doc.toJS() as Manifest;
    }));
}

const find = (manifests: Manifest[], kind: string, name: string) => {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name}`);
  return found;
};

/**
 * Where ingress-nginx sends a request path, given every Ingress of the host: its regex
 * locations are tried longest path first, case-insensitively, anchored at the start; a
 * rewrite-target then replaces the whole path, with the path's captures.
 */
function ingressRoute(ingresses: Manifest[], path: string): { service: string; path: string } | undefined {
  const locations = ingresses.flatMap((ing) => ing.spec.rules.flatMap((rule: any) => rule.http.paths.map((p: any) => ({ ing, p }))));
  locations.sort((a, b) => b.p.path.length - a.p.path.length);
  for (const { ing, p } of locations) {
    const match = new RegExp(`^${p.path}`, 'i').exec(path);
    if (!match) continue;
    const target = ing.metadata.annotations?.['nginx.ingress.kubernetes.io/rewrite-target'];
    return { service: p.backend.service.name, path: target ? target.replace(/\$(\d)/g, (_: string, n: string) => match[Number(n)] ?? '') : path };
  }
  return undefined;
}

/** Values ingress-nginx's annotation validation accepts (its parser's validators). */
const ACCEPTED: Record<string, RegExp> = {
  'use-regex': /^(true|false)$/,
  'proxy-body-size': /^\d+[bkmg]?$/i,
  'proxy-read-timeout': /^\d+$/,
  'proxy-send-timeout': /^\d+$/,
  'proxy-connect-timeout': /^\d+$/,
  'proxy-next-upstream': /^((error|timeout|invalid_header|http_500|http_502|http_503|http_504|http_403|http_404|http_429|non_idempotent|off)\s?)+$/,
  'proxy-next-upstream-tries': /^\d+$/,
  'rewrite-target': /^\/?[-._~a-zA-Z0-9/:$]*$/,
  'x-forwarded-prefix': /^[-._~a-zA-Z0-9/:]*$/,
};

/** Checks a function's objects against its declaration; `manifests` holds every object. */
function expectFaithful(fn: ResolvedFunction, manifests: Manifest[]): void {
  const deployment = find(manifests, 'Deployment', fn.name);
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  expect(container.readinessProbe.httpGet).toEqual({ path: `/v2/models/${fn.name}/ready`, port: 'http' });
  expect(container.livenessProbe.httpGet).toEqual({ path: '/v2/health/live', port: 'http' });
  expect(container.ports).toContainEqual({ name: 'http', containerPort: 8080, protocol: 'TCP' });
  expect(container.env).toEqual([
    { name: 'MODELFN_BODY_LIMIT', value: String(fn.limits.bodySize) },
    { name: 'MODELFN_TIMEOUT_MS', value: String(fn.limits.timeoutMs) },
    // ingress-nginx logs each request; the function does not log it again.
    { name: 'MODELFN_ACCESS_LOG', value: 'false' },
    // The Service's name: its one address reaches one replica, whose figures /stats answers.
    { name: 'MODELFN_PEERS', value: `${fn.name}:8080` },
  ]);
  expect(container.resources).toEqual({ requests: { cpu: '250m', memory: '128Mi' }, limits: { cpu: '2', memory: '512Mi' } });
  // A request that started just before the shutdown may run its whole timeout after the preStop wait.
  expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Math.ceil(fn.limits.timeoutMs / 1000) + PRESTOP_SECONDS);
  // What the "restricted" Pod Security Standard asks of every container, and a read-only root with /tmp in memory.
  const security = { ...pod.securityContext, ...container.securityContext };
  expect(security).toMatchObject({
    runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
  });
  expect(security.capabilities.add).toBeUndefined();
  expect(container.volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
  expect(pod.volumes).toEqual([{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } }]);
  expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
  expect(deployment.spec.replicas).toBeUndefined();

  const service = find(manifests, 'Service', fn.name);
  expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
  expect(deployment.spec.selector.matchLabels).toEqual(service.spec.selector);
  expect(service.spec.ports).toEqual([{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);

  const hpa = find(manifests, 'HorizontalPodAutoscaler', fn.name);
  expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: fn.name });
  expect(hpa.spec.minReplicas).toBe(fn.replicas);
  expect(hpa.spec.maxReplicas).toBeGreaterThan(fn.replicas);
  expect(hpa.spec.metrics[0].resource).toMatchObject({ name: 'cpu', target: { type: 'Utilization' } });

  const ingresses = manifests.filter((m) => m.kind === 'Ingress' && m.metadata.labels?.['app.kubernetes.io/name'] === fn.name);
  expect(ingresses).toHaveLength(2);
  for (const ing of ingresses) {
    const a = ing.metadata.annotations!;
    const at = (name: string) => a[`nginx.ingress.kubernetes.io/${name}`];
    expect(parseByteSize(at('proxy-body-size'))).toBe(fn.limits.bodySize);
    expect(Number(at('proxy-read-timeout'))).toBe(Math.ceil((fn.limits.timeoutMs + TIMEOUT_GRACE_MS) / 1000));
    expect(at('proxy-send-timeout')).toBe(at('proxy-read-timeout'));
    for (const [key, value] of Object.entries(a)) {
      const name = key.replace('nginx.ingress.kubernetes.io/', '');
      expect(ACCEPTED[name], `annotation ${key}`).toBeDefined();
      expect(value, `annotation ${key}`).toMatch(ACCEPTED[name]);
    }
    for (const rule of ing.spec.rules) {
      for (const p of rule.http.paths) expect(p.backend.service).toEqual({ name: fn.name, port: { name: 'http' } });
    }
  }
}

/** Paths a client might send for a function, and their near misses. */
function samplePaths(fn: ResolvedFunction): string[] {
  const p = fn.prefix;
  return [
    `${p}/`, `${p}/predict`, `${p}/v2/models/${fn.name}/infer`, `${p}/metrics`, `${p}/a/b/c`,
    `/v2/models/${fn.name}`, `/v2/models/${fn.name}/`, `/v2/models/${fn.name}/ready`, `/v2/models/${fn.name}/versions/1/infer`,
    `${p}x/predict`, `${p}-other`, `/v2/models/${fn.name}x/ready`, `/v2/models/${fn.name}-2`,
  ];
}

/** Expects ingress-nginx to route every sample path as the gateway does. */
function expectSameRoutes(functions: ResolvedFunction[], manifests: Manifest[]): void {
  const ingresses = manifests.filter((m) => m.kind === 'Ingress');
  const routes = gatewayRoutes(functions);
  for (const fn of functions) {
    for (const path of samplePaths(fn)) {
      const route = matchRoute(routes, path);
      const viaIngress = ingressRoute(ingresses, path);
      expect(viaIngress, path).toEqual(route && { service: route.fn, path: forwardedPath(route, path) });
    }
    // `<prefix>` alone: the gateway redirects to `<prefix>/`, the Ingress serves what that redirect would.
    expect(matchRoute(routes, fn.prefix)?.kind).toBe('redirect');
    expect(ingressRoute(ingresses, fn.prefix)).toEqual({ service: fn.name, path: '/' });
  }
}

describe('Kubernetes manifests (deploy/k8s)', () => {
  const dir = join(ROOT, FILES.k8sDir);
  const files = Object.fromEntries(readdirSync(dir).map((name) => [`${FILES.k8sDir}/${name}`, readFileSync(join(dir, name), 'utf8')]));
  let functions: ResolvedFunction[] = [];
  let manifests: Manifest[] = [];

  beforeAll(async () => {
    ({ functions } = await discoverFunctions(join(ROOT, 'functions'), readConfig({})));
    manifests = manifestsOf(files);
  });

  it('are every one a valid object of its kind against the Kubernetes OpenAPI schemas', () => {
    const validated = manifests.map(validate);
    expect(validated.sort()).toEqual([
      'Namespace/modelfn',
      ...functions.flatMap((f) => [`Deployment/${f.name}`, `HorizontalPodAutoscaler/${f.name}`, `Ingress/${f.name}-model`, `Ingress/${f.name}-prefix`, `Service/${f.name}`]),
    ].sort());
  });

  it('are checked by a schema that rejects broken objects', () => {
    const deployment = structuredClone(find(manifests, 'Deployment', functions[0].name));
    delete deployment.spec.selector;
    expect(() => validate(deployment)).toThrow(/selector/);
    const probe = structuredClone(find(manifests, 'Deployment', functions[0].name));
    probe.spec.template.spec.containers[0].readinessProbe.httpGet.port = { name: 'http' };
    expect(() => validate(probe)).toThrow(/port/);
    const ingress = structuredClone(manifests.find((m) => m.kind === 'Ingress')!);
    ingress.metadata.annotations!['nginx.ingress.kubernetes.io/proxy-read-timeout'] = 31 as unknown as string;
    expect(() => validate(ingress)).toThrow(/annotations/);
  });

  it('are listed, all of them, by kustomization.yaml, with every function image', () => {
    const kustomization = parse(files[`${FILES.k8sDir}/kustomization.yaml`]);
    expect(kustomization).toMatchObject({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', namespace: 'modelfn' });
    expect([...kustomization.resources].sort()).toEqual(readdirSync(dir).filter((f) => f !== 'kustomization.yaml').sort());
    const images = manifests.filter((m) => m.kind === 'Deployment').map((d) => d.spec.template.spec.containers[0].image);
    expect(kustomization.images.map((i: { name: string; newTag: string }) => `${i.name}:${i.newTag}`).sort()).toEqual(images.sort());
    for (const text of Object.values(files)) expect(text.split('\n')[0]).toMatch(/^# Generated from functions\/ by modelfn build/);
  });

  it('take probes, limits, replicas and security from each declaration', () => {
    expect(functions.map((f) => f.name)).toEqual(['digits', 'iris', 'vad']);
    for (const fn of functions) expectFaithful(fn, manifests);
    expect(find(manifests, 'Namespace', 'modelfn').metadata.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'restricted' });
  });

  it('route every path through ingress-nginx as the nginx gateway does', () => {
    expectSameRoutes(functions, manifests);
  });

  it('carry the same body limits and timeouts as the nginx gateway', () => {
    const conf = readFileSync(join(ROOT, 'nginx/nginx.conf'), 'utf8');
    for (const fn of functions) {
      const block = conf.slice(conf.indexOf(`location ^~ ${fn.prefix}/ {`));
      const ing = find(manifests, 'Ingress', `${fn.name}-prefix`).metadata.annotations!;
      expect(block).toContain(`client_max_body_size ${parseByteSize(ing['nginx.ingress.kubernetes.io/proxy-body-size'])};`);
      expect(block).toContain(`proxy_read_timeout ${ing['nginx.ingress.kubernetes.io/proxy-read-timeout']}s;`);
    }
  });
});

describe('Kubernetes manifests of other declarations', () => {
  const config = { bodyLimit: 10 * 1024 * 1024, timeoutMs: 30_000 };
  const declare = (folderName: string, declaration: object) => resolveDeclaration(declaration, { dir: `/nowhere/${folderName}`, folderName }, config);
  const functions = [
    declare('tools', { prefix: '/tools/v1.x', replicas: 3, limits: { bodySize: 1500, timeoutMs: 2500 } }),
    declare('tool', { replicas: 2, limits: { bodySize: '512kb', timeoutMs: 120_000 } }),
    declare('echo', {}),
  ];
  const manifests = manifestsOf(k8sFiles(functions, { tag: 'v7', namespace: 'ml', ingressClass: 'public' }));

  it('take API keys from the Secret the declaration names', () => {
    const locked = declare('locked', { auth: { apiKeys: 'locked-keys' } });
    const own = manifestsOf(k8sFiles([locked], { tag: 'v7', namespace: 'ml', ingressClass: 'public' }));
    for (const m of own) validate(m);
    const env = find(own, 'Deployment', 'locked').spec.template.spec.containers[0].env;
    expect(env).toContainEqual({ name: 'MODELFN_API_KEYS_LOCKED', valueFrom: { secretKeyRef: { name: 'locked-keys', key: 'keys' } } });
  });

  it('are valid, and follow prefixes, replicas, odd sizes and long timeouts', () => {
    for (const m of manifests) validate(m);
    for (const fn of functions) expectFaithful(fn, manifests);
    expect(find(manifests, 'Deployment', 'tools').spec.template.spec.containers[0].image).toBe('modelfn/tools:v7');
    expect(find(manifests, 'HorizontalPodAutoscaler', 'tools').spec).toMatchObject({ minReplicas: 3, maxReplicas: 12 });
    expect(find(manifests, 'Ingress', 'tool-prefix').metadata.annotations!['nginx.ingress.kubernetes.io/proxy-body-size']).toBe('512k');
    expect(find(manifests, 'Ingress', 'tool-prefix').spec.ingressClassName).toBe('public');
    expect(find(manifests, 'Namespace', 'ml')).toBeDefined();
  });

  it('route a dotted prefix, a prefix inside another name and nested prefixes as the gateway does', () => {
    expectSameRoutes(functions, manifests);
    const ingresses = manifests.filter((m) => m.kind === 'Ingress');
    expect(ingressRoute(ingresses, '/tools/v1.x/predict')).toEqual({ service: 'tools', path: '/predict' });
    expect(ingressRoute(ingresses, '/tools/v1yx/predict')).toBeUndefined();
    expect(ingressRoute(ingresses, '/tool/predict')).toEqual({ service: 'tool', path: '/predict' });
    expect(ingressRoute(ingresses, '/v2/models/tools/ready')).toEqual({ service: 'tools', path: '/v2/models/tools/ready' });
  });
});

describe('a function with versions on Kubernetes', () => {
  const versions = ['1', '2', '3'].map((version) => ({ version, modelFile: `${version}/model.onnx`, docs: {} }));
  const flowers = resolveDeclaration({ replicas: 2, traffic: { '1': 90, '2': 10 }, shadow: { '3': 25 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions }, { bodyLimit: 1024 * 1024, timeoutMs: 30_000 });
  const manifests = manifestsOf(k8sFiles([flowers], { tag: 'v1' })).filter((m) => m.kind !== 'Namespace');

  it('is a Deployment, Service and autoscaler per version, each selecting its own pods, and one HTTPRoute: all valid', () => {
    expect(manifests.map(validate)).toEqual([
      'Deployment/flowers-v1', 'Service/flowers-v1', 'HorizontalPodAutoscaler/flowers-v1',
      'Deployment/flowers-v2', 'Service/flowers-v2', 'HorizontalPodAutoscaler/flowers-v2',
      'Deployment/flowers-v3', 'Service/flowers-v3', 'HorizontalPodAutoscaler/flowers-v3',
      'HTTPRoute/flowers',
    ]);
    const v2 = manifests.find((m) => m.kind === 'Deployment' && m.metadata.name === 'flowers-v2')!;
    expect(v2.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'flowers', 'app.kubernetes.io/part-of': 'modelfn', 'app.kubernetes.io/version': '2' });
    expect(v2.spec.template.spec.containers[0].env).toContainEqual({ name: 'MODELFN_VERSION', value: '2' });
    expect(v2.spec.template.spec.containers[0].image).toBe('modelfn/flowers:v1');
    expect(manifests.find((m) => m.kind === 'Service' && m.metadata.name === 'flowers-v2')!.spec.selector['app.kubernetes.io/version']).toBe('2');
    expect(manifests.find((m) => m.kind === 'HorizontalPodAutoscaler' && m.metadata.name === 'flowers-v2')!.spec).toMatchObject({ minReplicas: 2, scaleTargetRef: { name: 'flowers-v2' } });
  });

  it('routes by weights (hundredths of a percent), mirrors the shadow\'s share, and sends each versioned path to its version', () => {
    const route = manifests.find((m) => m.kind === 'HTTPRoute')!;
    expect(route.spec.parentRefs).toEqual([{ name: 'modelfn' }]);
    const [prefix, models, ...versioned] = route.spec.rules;
    const split = [{ name: 'flowers-v1', port: 8080, weight: 9000 }, { name: 'flowers-v2', port: 8080, weight: 1000 }];
    const mirror = { type: 'RequestMirror', requestMirror: { backendRef: { name: 'flowers-v3', port: 8080 }, percent: 25 } };
    expect(prefix).toEqual({
      matches: [{ path: { type: 'PathPrefix', value: '/flowers' } }],
      filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }, mirror],
      backendRefs: split,
    });
    expect(models).toEqual({ matches: [{ path: { type: 'PathPrefix', value: '/v2/models/flowers' } }], filters: [mirror], backendRefs: split });
    expect(versioned.map((r: any) => [r.matches[0].path.value, r.backendRefs])).toEqual(['1', '2', '3'].map((v) => [`/v2/models/flowers/versions/${v}`, [{ name: `flowers-v${v}`, port: 8080 }]]));
  });

  it('mirrors a whole shadow without a percent (the standard filter)', () => {
    const whole = resolveDeclaration({ shadow: { '1': 100 } }, { dir: '/nowhere/flowers', folderName: 'flowers', versions: versions.slice(0, 2) }, { bodyLimit: 1024 * 1024, timeoutMs: 30_000 });
    const route = manifestsOf(k8sFiles([whole])).find((m) => m.kind === 'HTTPRoute')!;
    expect(validate(route)).toBe('HTTPRoute/flowers');
    expect(route.spec.rules[1].filters).toEqual([{ type: 'RequestMirror', requestMirror: { backendRef: { name: 'flowers-v1', port: 8080 } } }]);
  });

  it('refuses an HTTPRoute the Gateway API schema would not admit', () => {
    const route = manifests.find((m) => m.kind === 'HTTPRoute')!;
    expect(() => validate({ ...route, spec: { ...route.spec, rules: [{ backendRefs: [{ name: 'x', port: 8080, weight: -1 }] }] } })).toThrow(/weight must be >= 0/);
  });
});

