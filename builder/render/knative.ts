/**
 * Knative Serving Services generated from the function declarations, into deploy/knative/ for
 * clusters that run Knative Serving: the same image, probes and hardening as deploy/k8s, with
 * Knative's request-driven autoscaling instead of a Deployment and a CPU autoscaler. A function
 * declared with `scale` gets its bounds (`min-scale`, `max-scale`), its idle time as the
 * `scale-down-delay`, and its concurrency target as `containerConcurrency`; Knative then scales
 * it to zero and wakes it through its own activator.
 *
 * A function with several versions is Knative's own model spelled out: a Configuration per
 * version (each stamping that version's Revisions) and one Route whose `traffic` divides the
 * function's requests between them by percent, each tagged `v<N>` for a URL of its own. Knative
 * has no mirror: a `shadow` is not rendered there.
 *
 * Typed with @kubernetes-models/knative (types only); the tests validate the written YAML
 * against the same package's schemas.
 */
import type { IService as IKnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import type { IConfiguration } from '@kubernetes-models/knative/serving.knative.dev/v1/Configuration';
import type { IRoute } from '@kubernetes-models/knative/serving.knative.dev/v1/Route';
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { FILES, FUNCTION_PORT, GENERATED_HEADER, PROBES, TIMEOUT_GRACE_MS, TMP_MIB, deploymentUnits, functionImage, maxReplicas, serviceName } from '../policy.ts';
import { POD_RESOURCES, containerSecurityContext, functionEnv, kustomizationFile, namespace, type K8sOptions } from './k8s.ts';

/** Where build.ts writes the Knative manifests, relative to the project root. */
export const KNATIVE_DIR = FILES.knativeDir;

const AUTOSCALING = 'autoscaling.knative.dev';
/** Knative accepts a scale-down delay of at most one hour. */
const MAX_SCALE_DOWN_DELAY_SECONDS = 3600;

/**
 * The autoscaling annotations of a function's revisions. Without `scale` the function keeps its
 * declared replicas at all times (min-scale), and may grow like the HPA of deploy/k8s.
 */
export function autoscalingAnnotations(fn: ResolvedFunction): Record<string, string> {
  if (!fn.scale) {
    return { [`${AUTOSCALING}/min-scale`]: String(fn.replicas), [`${AUTOSCALING}/max-scale`]: String(maxReplicas(fn)), [`${AUTOSCALING}/initial-scale`]: String(fn.replicas) };
  }
  return {
    [`${AUTOSCALING}/min-scale`]: String(fn.scale.min),
    [`${AUTOSCALING}/max-scale`]: String(fn.scale.max),
    [`${AUTOSCALING}/initial-scale`]: String(fn.replicas),
    [`${AUTOSCALING}/scale-down-delay`]: `${Math.min(fn.scale.idleSeconds, MAX_SCALE_DOWN_DELAY_SECONDS)}s`,
  };
}

const labelsOf = (fn: ResolvedFunction) => ({ 'app.kubernetes.io/name': fn.name, 'app.kubernetes.io/part-of': 'modelfn', 'app.kubernetes.io/component': 'function' });

export function knativeService(fn: ResolvedFunction, options: K8sOptions = {}): IKnativeService {
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: fn.name, labels: labelsOf(fn) },
    spec: { template: revisionTemplate(fn, options) },
  };
}

/**
 * Whole percents summing to 100 (Knative's traffic takes integers): each share rounded down,
 * the points left over given to the largest remainders, in version order on ties.
 *
 * @example wholePercents([33.33, 33.33, 33.34]) // [33, 33, 34]
 */
export function wholePercents(percents: readonly number[]): number[] {
  const floors = percents.map(Math.floor);
  let left = 100 - floors.reduce((a, b) => a + b, 0);
  const order = percents.map((p, i) => [p - floors[i], i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) if (left-- > 0) floors[i]++;
  return floors;
}

/** The objects of a function with several versions: a Configuration per version, then the Route that splits between them. */
export function knativeVersions(fn: ResolvedFunction, options: K8sOptions = {}): [...IConfiguration[], IRoute] {
  const units = deploymentUnits(fn);
  const configurations = units.map((unit): IConfiguration => ({
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Configuration',
    metadata: { name: serviceName(unit), labels: { ...labelsOf(fn), 'app.kubernetes.io/version': unit.version } },
    spec: { template: revisionTemplate(unit, options) },
  }));
  const percents = wholePercents(units.map((u) => fn.traffic.find((t) => t.version === u.version)?.percent ?? 0));
  const route: IRoute = {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Route',
    metadata: { name: fn.name, labels: labelsOf(fn) },
    // Every version is listed, 0% included: its tag still reaches it (v1-<name>.<namespace>...).
    spec: { traffic: units.map((unit, i) => ({ configurationName: serviceName(unit), percent: percents[i], tag: `v${unit.version}` })) },
  };
  return [...configurations, route];
}

/** What each Revision of a function (or of one version) runs. */
function revisionTemplate(fn: ResolvedFunction, options: K8sOptions): NonNullable<IKnativeService['spec']>['template'] {
  return {
    metadata: { annotations: autoscalingAnnotations(fn) },
    spec: {
      // A hard limit per replica; Knative's autoscaler targets it (the activator's `concurrency` on compose).
      ...(fn.scale ? { containerConcurrency: fn.scale.concurrency } : {}),
      timeoutSeconds: Math.ceil((fn.limits.timeoutMs + TIMEOUT_GRACE_MS) / 1000),
      enableServiceLinks: false,
      containers: [{
        name: 'function',
        image: functionImage(fn.name, options.tag ?? 'latest'),
        imagePullPolicy: 'IfNotPresent',
        // Knative routes to the one port; probes without a port use it.
        ports: [{ name: 'http1', containerPort: FUNCTION_PORT, protocol: 'TCP' }],
        env: functionEnv(fn),
        resources: POD_RESOURCES,
        readinessProbe: { httpGet: { path: `/v2/models/${fn.name}/ready` }, ...PROBES.readiness },
        livenessProbe: { httpGet: { path: '/v2/health/live' }, ...PROBES.liveness },
        securityContext: containerSecurityContext(),
        volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
      }],
      volumes: [{ name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: `${TMP_MIB}Mi` } }],
    },
  };
}

/**
 * Every file of deploy/knative, by path relative to the project root: the namespace, one
 * Service per function, and the kustomization listing them.
 *
 * @example for (const [path, text] of Object.entries(knativeFiles(functions))) writeFileSync(path, text);
 */
export function knativeFiles(functions: readonly ResolvedFunction[], options: K8sOptions = {}): Record<string, string> {
  const yaml = (objects: readonly object[]) => `${GENERATED_HEADER}\n${objects.map((o) => stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })).join('---\n')}`;
  const files: Record<string, string> = { [`${KNATIVE_DIR}/namespace.yaml`]: yaml([namespace(options)]) };
  for (const fn of functions) files[`${KNATIVE_DIR}/${fn.name}.yaml`] = yaml(fn.versions.length > 1 ? knativeVersions(fn, options) : [knativeService(fn, options)]);
  files[`${KNATIVE_DIR}/kustomization.yaml`] = kustomizationFile(KNATIVE_DIR, files, functions, options);
  return files;
}
