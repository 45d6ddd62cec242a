/**
 * Knative Serving Services generated from the function declarations, into deploy/knative/ for
 * clusters that run Knative Serving: the same image, probes and hardening as deploy/k8s, with
 * Knative's request-driven autoscaling instead of a Deployment and a CPU autoscaler. A function
 * declared with `scale` gets its bounds (`min-scale`, `max-scale`), its idle time as the
 * `scale-down-delay`, and its concurrency target as `containerConcurrency`; Knative then scales
 * it to zero and wakes it through its own activator.
 *
 * Typed with @kubernetes-models/knative (types only); the tests validate the written YAML
 * against the same package's schemas.
 */
import type { IService as IKnativeService } from '@kubernetes-models/knative/serving.knative.dev/v1/Service';
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { FILES, FUNCTION_PORT, GENERATED_HEADER, PROBES, TIMEOUT_GRACE_MS, TMP_MIB, functionImage, maxReplicas } from '../policy.ts';
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

export function knativeService(fn: ResolvedFunction, options: K8sOptions = {}): IKnativeService {
  return {
    apiVersion: 'serving.knative.dev/v1',
    kind: 'Service',
    metadata: { name: fn.name, labels: { 'app.kubernetes.io/name': fn.name, 'app.kubernetes.io/part-of': 'modelfn', 'app.kubernetes.io/component': 'function' } },
    spec: {
      template: {
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
      },
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
  for (const fn of functions) files[`${KNATIVE_DIR}/${fn.name}.yaml`] = yaml([knativeService(fn, options)]);
  files[`${KNATIVE_DIR}/kustomization.yaml`] = kustomizationFile(KNATIVE_DIR, files, functions, options);
  return files;
}
