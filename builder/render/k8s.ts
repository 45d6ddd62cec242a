/**
 * Kubernetes manifests generated from the function declarations, into deploy/k8s/ for
 * `kubectl apply -k deploy/k8s`: per function a Deployment, a Service, a HorizontalPodAutoscaler
 * and the ingress-nginx Ingresses that route like the gateway; a Namespace held to the
 * "restricted" Pod Security Standard; and the kustomization listing them. A function with several
 * versions has a Deployment, Service and autoscaler per version and one Gateway API HTTPRoute
 * whose weights are its traffic split.
 *
 * The objects are typed with kubernetes-models' interfaces (types only: nothing of it runs in
 * the build), so a misspelt or misplaced field fails the typecheck; the tests validate the
 * written YAML against the Kubernetes OpenAPI schemas of the same package.
 */
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { INamespace } from 'kubernetes-models/v1/Namespace';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress';
import type { IHTTPRoute } from '@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute';
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { gatewayRoutes } from '../../runtime/gateway/routes.ts';
import { keysVariable } from '../../runtime/http/auth.ts';
import {
  CPU_TARGET_PERCENT, FILES, FUNCTION_PORT, GENERATED_HEADER, POD_CPU_REQUEST, PRESTOP_SECONDS, PROBES, REPLICA_RESOURCES, RUNTIME_USER,
  TIMEOUT_GRACE_MS, TMP_MIB, deploymentUnits, functionEnvironment, functionImage, maxReplicas, serviceName, stopGraceSeconds,
} from '../policy.ts';

const K8S_DIR = FILES.k8sDir;

export interface K8sOptions {
  /** Image tag of the functions. */
  tag?: string;
  /** Namespace the kustomization puts everything in. */
  namespace?: string;
  /** IngressClass of ingress-nginx. */
  ingressClass?: string;
  /** The Gateway (Gateway API) the HTTPRoutes of functions with versions attach to: `modelfn` by default. */
  gateway?: string;
}

const PART_OF = 'modelfn';
const ANNOTATION = 'nginx.ingress.kubernetes.io';

/** Requests decide scheduling and the autoscaler's utilisation; the limits are compose's and Swarm's. */
export const POD_RESOURCES = {
  requests: { cpu: POD_CPU_REQUEST, memory: `${REPLICA_RESOURCES.reservations.memoryMiB}Mi` },
  limits: { cpu: String(REPLICA_RESOURCES.limits.cpus), memory: `${REPLICA_RESOURCES.limits.memoryMiB}Mi` },
};

/** One version of several carries its version in its labels and selector: each version's pods are its own. */
const versionOf = (fn: ResolvedFunction): Record<string, string> => (fn.versions.length > 1 ? { 'app.kubernetes.io/version': fn.version } : {});
const labelsOf = (fn: ResolvedFunction) => ({
  'app.kubernetes.io/name': fn.name,
  'app.kubernetes.io/part-of': PART_OF,
  'app.kubernetes.io/component': 'function',
  ...versionOf(fn),
});
const selectorOf = (fn: ResolvedFunction) => ({ 'app.kubernetes.io/name': fn.name, 'app.kubernetes.io/part-of': PART_OF, ...versionOf(fn) });

/** A function container's environment: its limits, and its API keys from a Secret. */
export function functionEnv(fn: ResolvedFunction) {
  return [
    ...Object.entries(functionEnvironment(fn)).map(([name, value]) => ({ name, value })),
    // API keys from a Secret named as the declaration says, key `keys` (one per line).
    ...(fn.auth ? [{ name: keysVariable(fn.name), valueFrom: { secretKeyRef: { name: fn.auth.apiKeys, key: 'keys' } } }] : []),
  ];
}

/** The hardening of a function container: non-root, read-only root, no capability, no escalation. */
export function containerSecurityContext() {
  const { uid, gid } = RUNTIME_USER;
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: gid,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' as const },
  };
}

export function deployment(fn: ResolvedFunction, options: K8sOptions = {}): IDeployment {
  const { uid, gid } = RUNTIME_USER;
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: serviceName(fn), labels: labelsOf(fn) },
    spec: {
      // No `replicas`: the autoscaler owns the count (its minimum is the declared replicas), and
      // a value here would reset it on every apply.
      selector: { matchLabels: selectorOf(fn) },
      revisionHistoryLimit: 5,
      // A new pod is ready before an old one goes: the Swarm stack's start-first order.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: labelsOf(fn) },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          terminationGracePeriodSeconds: stopGraceSeconds(fn) + PRESTOP_SECONDS,
          securityContext: { runAsNonRoot: true, runAsUser: uid, runAsGroup: gid, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [{
            name: 'function',
            image: functionImage(fn.name, options.tag ?? 'latest'),
            imagePullPolicy: 'IfNotPresent',
            ports: [{ name: 'http', containerPort: FUNCTION_PORT, protocol: 'TCP' }],
            env: functionEnv(fn),
            resources: POD_RESOURCES,
            // Traffic only once the model is loaded; a restart only when the process stops answering.
            readinessProbe: { httpGet: { path: `/v2/models/${fn.name}/ready`, port: 'http' }, ...PROBES.readiness },
            livenessProbe: { httpGet: { path: '/v2/health/live', port: 'http' }, ...PROBES.liveness },
            lifecycle: { preStop: { exec: { command: ['/usr/local/bin/node', '-e', `setTimeout(() => {}, ${PRESTOP_SECONDS * 1000})`] } } },
            securityContext: containerSecurityContext(),
            volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
          }],
          volumes: [{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: `${TMP_MIB}Mi` } }],
        },
      },
    },
  };
}

export function service(fn: ResolvedFunction): IService {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: serviceName(fn), labels: labelsOf(fn) },
    spec: {
      type: 'ClusterIP',
      selector: selectorOf(fn),
      ports: [{ name: 'http', port: FUNCTION_PORT, targetPort: 'http', protocol: 'TCP' }],
    },
  };
}

export function autoscaler(fn: ResolvedFunction): IHorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: serviceName(fn), labels: labelsOf(fn) },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: serviceName(fn) },
      minReplicas: fn.replicas,
      maxReplicas: maxReplicas(fn),
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: CPU_TARGET_PERCENT } } }],
    },
  };
}

/** nginx's size syntax for a byte count: `10m`, `512k`, or bytes. */
export function nginxSize(bytes: number): string {
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}m`;
  if (bytes % 1024 === 0) return `${bytes / 1024}k`;
  return String(bytes);
}

const escapeRegex = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * The ingress-nginx Ingresses of a function, from the gateway's route table: one that strips
 * the prefix (`/<prefix>` and `/<prefix>/...` reach the function as `/` and `/...`) and one
 * that passes `/v2/models/<name>` and `/v2/models/<name>/...` unchanged. Two objects, because
 * ingress-nginx applies a rewrite to every path of the Ingress that declares it. Body limit and
 * timeouts are the gateway's, from the declaration.
 */
export function ingresses(fn: ResolvedFunction, options: K8sOptions = {}): IIngress[] {
  const timeout = String(Math.ceil((fn.limits.timeoutMs + TIMEOUT_GRACE_MS) / 1000));
  const common = {
    [`${ANNOTATION}/use-regex`]: 'true',
    [`${ANNOTATION}/proxy-body-size`]: nginxSize(fn.limits.bodySize),
    [`${ANNOTATION}/proxy-read-timeout`]: timeout,
    [`${ANNOTATION}/proxy-send-timeout`]: timeout,
    [`${ANNOTATION}/proxy-connect-timeout`]: '2',
    // Inference is idempotent: a request that could not reach one pod is retried on another.
    [`${ANNOTATION}/proxy-next-upstream`]: 'error timeout non_idempotent',
    [`${ANNOTATION}/proxy-next-upstream-tries`]: '3',
  };
  const routes = gatewayRoutes([fn]);
  const stripping = routes.find((r) => r.kind === 'prefix' && r.strip);
  const models = routes.find((r) => r.kind === 'exact');
  if (!stripping || stripping.kind !== 'prefix' || !stripping.strip || !models) throw new Error(`${fn.name}: unexpected gateway routes`);
  const ingress = (suffix: string, path: string, annotations: Record<string, string>): IIngress => ({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'Ingress',
    metadata: { name: `${fn.name}-${suffix}`, labels: labelsOf(fn), annotations: { ...common, ...annotations } },
    spec: {
      ingressClassName: options.ingressClass ?? 'nginx',
      rules: [{
        http: {
          paths: [{ path, pathType: 'ImplementationSpecific', backend: { service: { name: fn.name, port: { name: 'http' } } } }],
        },
      }],
    },
  });
  return [
    ingress('prefix', `${escapeRegex(stripping.strip)}(/|$)(.*)`, {
      [`${ANNOTATION}/rewrite-target`]: '/$2',
      [`${ANNOTATION}/x-forwarded-prefix`]: stripping.strip,
    }),
    ingress('model', `${escapeRegex(models.path)}(/|$)`, {}),
  ];
}

export function namespace(options: K8sOptions = {}): INamespace {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: options.namespace ?? PART_OF,
      labels: {
        'app.kubernetes.io/part-of': PART_OF,
        // Pods that break the restricted profile (root, privilege escalation, capabilities) are refused.
        'pod-security.kubernetes.io/enforce': 'restricted',
      },
    },
  };
}

/**
 * The Gateway API HTTPRoute of a function with several versions: its prefix (stripped) and its
 * protocol paths divided by the declared weights, each version's protocol paths to that version
 * alone (the longest prefix wins), and a RequestMirror of the shadow's share. Weights divide at
 * random: Gateway API has no hash of a header, so X-Modelfn-Traffic-Key does not keep a client
 * on one version here (nginx and embedded mode do).
 */
export function httpRoute(fn: ResolvedFunction, options: K8sOptions = {}): IHTTPRoute {
  const port = FUNCTION_PORT;
  const units = deploymentUnits(fn);
  const backendOf = (version: string) => serviceName(units.find((u) => u.version === version)!);
  const split = fn.traffic.filter((t) => t.percent > 0).map((t) => ({ name: backendOf(t.version), port, weight: Math.round(t.percent * 100) }));
  // A whole mirror is Gateway API's standard RequestMirror; a share of one needs its `percent`
  // (Gateway API 1.2 and later), which the schemas the tests validate against predate.
  const mirrors = fn.shadow.filter((s) => s.percent > 0).map((s) => ({
    type: 'RequestMirror' as const,
    requestMirror: { backendRef: { name: backendOf(s.version), port }, ...(s.percent < 100 ? { percent: Math.round(s.percent) } : {}) },
  }));
  const prefix = (value: string) => [{ path: { type: 'PathPrefix' as const, value } }];
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: fn.name, labels: { 'app.kubernetes.io/name': fn.name, 'app.kubernetes.io/part-of': PART_OF, 'app.kubernetes.io/component': 'function' } },
    spec: {
      parentRefs: [{ name: options.gateway ?? PART_OF }],
      rules: [
        { matches: prefix(fn.prefix), filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/' } } }, ...mirrors], backendRefs: split },
        { matches: prefix(`/v2/models/${fn.name}`), ...(mirrors.length ? { filters: mirrors } : {}), backendRefs: split },
        ...fn.versions.map(({ version }) => ({ matches: prefix(`/v2/models/${fn.name}/versions/${version}`), backendRefs: [{ name: backendOf(version), port }] })),
      ],
    },
  };
}

/** Every object of one function, in apply order: per version for a function with several, then its HTTPRoute. */
export function functionManifests(fn: ResolvedFunction, options: K8sOptions = {}): (IDeployment | IService | IHorizontalPodAutoscaler | IIngress | IHTTPRoute)[] {
  if (fn.versions.length > 1) return [...deploymentUnits(fn).flatMap((unit) => [deployment(unit, options), service(unit), autoscaler(unit)]), httpRoute(fn, options)];
  return [deployment(fn, options), service(fn), autoscaler(fn), ...ingresses(fn, options)];
}

function yamlDocuments(objects: readonly object[]): string {
  const docs = objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false }));
  return `${GENERATED_HEADER}\n${docs.join('---\n')}`;
}

/**
 * The kustomization of a folder of manifests: every file in it, the namespace, and the functions'
 * images (`kustomize edit set image modelfn/iris=registry.example.com/iris:1.2` points at a registry).
 */
export function kustomizationFile(dir: string, files: Record<string, string>, functions: readonly ResolvedFunction[], options: K8sOptions = {}): string {
  const kustomization = {
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    namespace: options.namespace ?? PART_OF,
    resources: Object.keys(files).map((path) => path.slice(dir.length + 1)),
    images: functions.map((fn) => {
      const [name, newTag] = functionImage(fn.name, options.tag ?? 'latest').split(':');
      return { name, newTag };
    }),
  };
  return `${GENERATED_HEADER}\n${stringify(kustomization, { lineWidth: 0 })}`;
}

/**
 * Every file of deploy/k8s, by path relative to the project root.
 *
 * @example for (const [path, text] of Object.entries(k8sFiles(functions))) writeFileSync(path, text);
 */
export function k8sFiles(functions: readonly ResolvedFunction[], options: K8sOptions = {}): Record<string, string> {
  const files: Record<string, string> = { [`${K8S_DIR}/namespace.yaml`]: yamlDocuments([namespace(options)]) };
  for (const fn of functions) files[`${K8S_DIR}/${fn.name}.yaml`] = yamlDocuments(functionManifests(fn, options));
  files[`${K8S_DIR}/kustomization.yaml`] = kustomizationFile(K8S_DIR, files, functions, options);
  return files;
}
