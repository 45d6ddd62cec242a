/**
 * docker-compose.yml, generated from the function declarations: one hardened service per
 * function, and the nginx gateway that starts once they are healthy.
 */
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import type { ScaledSpec } from '../../runtime/activator/activator.ts';
import {
  ACTIVATOR_RESOURCES, ACTIVATOR_SERVICE, CONTROL_PORT, FUNCTION_PORT, GATEWAY_LIVE, GATEWAY_PORT, GATEWAY_RESOURCES, GATEWAY_TMP_MIB, GENERATED_HEADER, HEALTHCHECK,
  PUBLISHED_HOST, PUBLISHED_PORT, REPLICA_RESOURCES, TAG_VARIABLE, TMP_MIB, activatorImage, functionEnvironment, functionImage, gatewayImage,
  deploymentUnits, runtimeUser, scaledUnits, secretFile, serviceName, stopGraceSeconds,
} from '../policy.ts';

export interface ComposeOptions {
  /** Image tag of the functions and the gateway (default: MODELFN_IMAGE_TAG when the stack starts, else latest). */
  tag?: string;
}

/** The healthcheck of a function service, in the format compose and swarm share. */
export const composeHealthcheck = () => ({
  test: [...HEALTHCHECK.command],
  interval: `${HEALTHCHECK.intervalSeconds}s`,
  timeout: `${HEALTHCHECK.timeoutSeconds}s`,
  retries: HEALTHCHECK.retries,
  start_period: `${HEALTHCHECK.startPeriodSeconds}s`,
});

/** Secrets the functions' API keys come from, read from `secrets/<name>` beside the file. */
export function composeSecrets(functions: readonly ResolvedFunction[]) {
  const secrets = Object.fromEntries(functions.filter((fn) => fn.auth).map((fn) => [fn.auth!.apiKeys, { file: secretFile(fn.auth!.apiKeys) }]));
  return Object.keys(secrets).length ? { secrets } : {};
}

/** What every function container is, in compose and swarm alike: its image, non-root, read-only, no capabilities, its limits. */
export const functionContainer = (fn: ResolvedFunction, tag: string) => ({
  image: functionImage(fn.name, tag),
  init: true,
  user: runtimeUser(),
  read_only: true,
  cap_drop: ['ALL'],
  environment: functionEnvironment(fn),
});

/**
 * What the activator is told of a scaled deployment unit (a function, or one version of a
 * function with several): it wakes and puts to sleep the unit's own service, by its name.
 */
export function scaledSpec(fn: ResolvedFunction): ScaledSpec {
  if (!fn.scale) throw new Error(`${serviceName(fn)} does not scale`);
  const { min, max, idleSeconds, wake, concurrency } = fn.scale;
  return { name: serviceName(fn), prefix: fn.prefix, min, max, idleSeconds, wake, concurrency, timeoutMs: fn.limits.timeoutMs, bodySize: fn.limits.bodySize };
}

/** The environment of a function that scales: its own, and its control server's (for the activator only). */
export const scaledFunctionEnvironment = (fn: ResolvedFunction) => ({
  ...functionEnvironment(fn), MODELFN_CONTROL_PORT: String(CONTROL_PORT), MODELFN_CONTROL_FROM: ACTIVATOR_SERVICE,
});

/** The activator's environment on compose or swarm: the functions that scale, who may call it. */
export const activatorEnvironment = (functions: readonly ResolvedFunction[], orchestrator: 'compose' | 'swarm') => ({
  MODELFN_SCALED_FUNCTIONS: JSON.stringify(scaledUnits(functions).map(scaledSpec)),
  MODELFN_ACTIVATOR_FROM: 'gateway',
  MODELFN_CONTROL_PORT: String(CONTROL_PORT),
  ...(orchestrator === 'swarm' ? { MODELFN_ORCHESTRATOR: 'swarm' } : {}),
});

/**
 * The activator's service: the only container with the engine's socket. Not published; on the
 * functions' network, where it answers the gateway alone. It runs as the runtime's non-root user
 * with the socket's group (MODELFN_DOCKER_GID, which `npm run up` reads off the socket).
 */
function activatorService(functions: readonly ResolvedFunction[], tag: string) {
  return {
    image: activatorImage(tag),
    init: true,
    user: runtimeUser(),
    group_add: ['${MODELFN_DOCKER_GID:-0}'],
    read_only: true,
    tmpfs: ['/tmp:size=16m,mode=1777'],
    cap_drop: ['ALL'],
    security_opt: ['no-new-privileges:true'],
    environment: activatorEnvironment(functions, 'compose'),
    volumes: ['/var/run/docker.sock:/var/run/docker.sock'],
    expose: [String(FUNCTION_PORT)],
    healthcheck: { ...composeHealthcheck(), start_period: '5s' },
    restart: 'unless-stopped',
    deploy: { resources: { limits: { cpus: String(ACTIVATOR_RESOURCES.limits.cpus), memory: `${ACTIVATOR_RESOURCES.limits.memoryMiB}M` } } },
    networks: ['functions'],
  };
}

/** The compose document as an object (Compose Specification format). */
export function composeDocument(functions: readonly ResolvedFunction[], options: ComposeOptions = {}) {
  const services: Record<string, unknown> = {};
  // A function with several versions runs each as its own service (<name>-v<N>), with its own replicas and scale.
  for (const fn of functions.flatMap(deploymentUnits)) {
    services[serviceName(fn)] = {
      ...functionContainer(fn, options.tag ?? TAG_VARIABLE),
      // The control server through which the activator puts it to sleep, for the activator only.
      ...(fn.scale ? { environment: scaledFunctionEnvironment(fn) } : {}),
      tmpfs: [`/tmp:size=${TMP_MIB}m,mode=1777`],
      security_opt: ['no-new-privileges:true'],
      expose: fn.scale ? [String(FUNCTION_PORT), String(CONTROL_PORT)] : [String(FUNCTION_PORT)],
      healthcheck: composeHealthcheck(),
      restart: 'unless-stopped',
      stop_grace_period: `${stopGraceSeconds(fn)}s`,
      deploy: {
        replicas: fn.replicas,
        resources: { limits: { cpus: String(REPLICA_RESOURCES.limits.cpus), memory: `${REPLICA_RESOURCES.limits.memoryMiB}M` } },
      },
      networks: ['functions'],
      // API keys reach the function as a secret file at /run/secrets/<name>, never baked into an image.
      ...(fn.auth ? { secrets: [fn.auth.apiKeys] } : {}),
    };
  }
  const scaled = scaledUnits(functions).length > 0;
  if (scaled) services[ACTIVATOR_SERVICE] = activatorService(functions, options.tag ?? TAG_VARIABLE);
  services.gateway = {
    image: gatewayImage(options.tag ?? TAG_VARIABLE),
    // Its config from a volume `modelfn traffic` can write (a graceful reload puts a new split in force).
    command: ['nginx', '-c', GATEWAY_LIVE.file, '-g', 'daemon off;'],
    volumes: [GATEWAY_LIVE.dir],
    ports: [`${PUBLISHED_HOST}:${PUBLISHED_PORT}:${GATEWAY_PORT}`],
    read_only: true,
    // nginx's request bodies are held there (GATEWAY_BODIES), within its memory limit.
    tmpfs: [`/tmp:size=${GATEWAY_TMP_MIB}m`],
    cap_drop: ['ALL'],
    cap_add: ['CHOWN', 'SETGID', 'SETUID'],
    security_opt: ['no-new-privileges:true'],
    restart: 'unless-stopped',
    // A function (or version) that scales may be asleep before the gateway starts: the activator wakes it.
    depends_on: Object.fromEntries([...functions.flatMap(deploymentUnits).filter((unit) => !unit.scale).map(serviceName), ...(scaled ? [ACTIVATOR_SERVICE] : [])].map((name) => [name, { condition: 'service_healthy' }])),
    deploy: { resources: { limits: { cpus: String(GATEWAY_RESOURCES.limits.cpus), memory: `${GATEWAY_RESOURCES.limits.memoryMiB}M` } } },
    networks: ['functions'],
  };
  return { services, networks: { functions: {} }, ...composeSecrets(functions) };
}

/**
 * The docker-compose.yml text.
 *
 * @example writeFileSync('docker-compose.yml', composeFile(functions));
 */
export function composeFile(functions: readonly ResolvedFunction[], options: ComposeOptions = {}): string {
  return `${GENERATED_HEADER}\n${stringify(composeDocument(functions, options), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
