/**
 * Docker Swarm: the stack file generated from the function declarations (deploy/swarm/stack.yml)
 * with its gateway config (deploy/swarm/nginx.conf). Pure: builder/docker/swarm.ts deploys it.
 *
 * Discovery: every function service runs with `endpoint_mode: dnsrr`, so its name resolves to
 * the addresses of its healthy tasks, and nginx resolves it per request (the `dns` mode of
 * builder/render/nginx.ts, as in compose). The `vip` mode would need Swarm's virtual IPs, which the engine
 * makes with the kernel's IPVS: on a kernel built without it (this project's machines, some VM
 * and WSL kernels) a VIP swallows every connection, and so does the routing mesh (`ingress`
 * publishing), which depends on it too. Resolving task addresses works everywhere, balances per
 * request rather than per kept-alive connection, sees added replicas within a second, and lets
 * nginx retry a refused request on another replica.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import {
  ACTIVATOR_RESOURCES, ACTIVATOR_SERVICE, DNS_VALID_SECONDS, FILES, SCALED_CONNECT_TIMEOUT_MS, FUNCTION_LABEL, GATEWAY_CONFIG_LABEL, GATEWAY_LIVE, VERSION_LABEL, deploymentUnits, scaledUnits, serviceName, GATEWAY_PORT, GATEWAY_RESOURCES, GATEWAY_TMP_MIB, GENERATED_HEADER,
  PUBLISHED_PORT, REPLICA_RESOURCES, RUNTIME_USER, TAG_VARIABLE, TMP_MIB, activatorImage, gatewayImage, stopGraceSeconds,
} from '../policy.ts';
import { activatorEnvironment, composeHealthcheck, composeSecrets, functionContainer, scaledFunctionEnvironment } from './compose.ts';
import { nginxConfig } from './nginx.ts';

/**
 * The gateway's nginx.conf on Swarm: the `dns` discovery of compose, with DNS answers kept for
 * Swarm's time (policy.ts). The gateway image carries it beside the compose one
 * (GATEWAY_LIVE.swarmFile, with the stack's changes by `modelfn traffic` applied), in the volume
 * the gateway runs it from, so that `modelfn traffic` can put a new split in force in place.
 */
export function swarmGatewayConfig(functions: readonly ResolvedFunction[]): string {
  return nginxConfig(functions, {
    mode: 'dns',
    activator: ACTIVATOR_SERVICE,
    dnsValidSeconds: DNS_VALID_SECONDS.swarm,
    scaledConnectTimeoutMs: SCALED_CONNECT_TIMEOUT_MS.swarm,
    discoveryNote: `answers kept ${DNS_VALID_SECONDS.swarm} s (Docker Swarm)`,
  });
}

function resources(r: typeof REPLICA_RESOURCES | typeof GATEWAY_RESOURCES | typeof ACTIVATOR_RESOURCES) {
  return {
    limits: { cpus: String(r.limits.cpus), memory: `${r.limits.memoryMiB}M` },
    ...('reservations' in r ? { reservations: { cpus: String(r.reservations.cpus), memory: `${r.reservations.memoryMiB}M` } } : {}),
  };
}

/** Where the activator runs (service updates are a manager's), and the functions it freezes with it. */
const ACTIVATOR_PLACEMENT = 'node.role == manager';

/**
 * The activator on Swarm: as on compose, the only container with the engine's socket, not
 * published, answering the gateway alone; here it scales the stack's services (to 0 and back)
 * and freezes their tasks. It must run on a manager (service updates are a manager's), and
 * freezes the tasks of its own node. A stack file cannot add a group (`group_add`), so the
 * socket's group (MODELFN_DOCKER_GID, read off the local socket by `modelfn deploy`; required) is
 * its primary one.
 */
function activatorService(functions: readonly ResolvedFunction[], tag: string) {
  return {
    image: activatorImage(tag),
    init: true,
    // Required: a wrong group would leave it without the socket, crash-looping.
    user: `${RUNTIME_USER.uid}:\${MODELFN_DOCKER_GID:?set MODELFN_DOCKER_GID to the group of the engine socket}`,
    read_only: true,
    cap_drop: ['ALL'],
    environment: activatorEnvironment(functions, 'swarm'),
    volumes: [TMP, { type: 'bind', source: '/var/run/docker.sock', target: '/var/run/docker.sock' }],
    healthcheck: { ...composeHealthcheck(), start_period: '5s' },
    networks: ['functions'],
    deploy: {
      mode: 'replicated',
      replicas: 1,
      endpoint_mode: 'dnsrr',
      placement: { constraints: [ACTIVATOR_PLACEMENT] },
      resources: resources(ACTIVATOR_RESOURCES),
      restart_policy: { condition: 'any', delay: '2s', window: '20s' },
      update_config: { parallelism: 1, order: 'stop-first', failure_action: 'rollback', monitor: '5s' },
    },
  };
}

const TMP = { type: 'tmpfs', target: '/tmp', tmpfs: { size: TMP_MIB * 1024 * 1024 } };

/**
 * The stack document (the version 3 format `docker stack deploy` reads).
 *
 * Swarm ignores compose's `security_opt`, so `no-new-privileges` cannot be set here: the
 * functions still run as a non-root user, with a read-only root and every capability dropped.
 */
export function stackDocument(functions: readonly ResolvedFunction[], options: { tag?: string } = {}) {
  const hash = createHash('sha256').update(swarmGatewayConfig(functions)).digest('hex').slice(0, 12);
  const services: Record<string, unknown> = {};
  // A function with several versions runs each as its own service (<name>-v<N>), with its own replicas and scale.
  for (const fn of functions.flatMap(deploymentUnits)) {
    services[serviceName(fn)] = {
      ...functionContainer(fn, options.tag ?? TAG_VARIABLE),
      // The control server through which the activator puts it to sleep, for the activator only.
      ...(fn.scale ? { environment: scaledFunctionEnvironment(fn) } : {}),
      volumes: [TMP],
      // A task receives traffic only once healthy, which is also what a rolling update waits for.
      healthcheck: composeHealthcheck(),
      stop_grace_period: `${stopGraceSeconds(fn)}s`,
      networks: ['functions'],
      // API keys as a swarm secret, at /run/secrets/<name> where the runtime looks for them.
      ...(fn.auth ? { secrets: [fn.auth.apiKeys] } : {}),
      deploy: {
        mode: 'replicated',
        replicas: fn.replicas,
        // A frozen task is paused through the activator's engine: it must run beside the activator.
        ...(fn.scale?.wake === 'unpause' ? { placement: { constraints: [ACTIVATOR_PLACEMENT] } } : {}),
        endpoint_mode: 'dnsrr',
        labels: { [FUNCTION_LABEL]: fn.name, ...(fn.versions.length > 1 ? { [VERSION_LABEL]: fn.version } : {}) },
        resources: resources(REPLICA_RESOURCES),
        restart_policy: { condition: 'any', delay: '2s', window: '20s' },
        // One replica at a time, the new one started (and healthy) before the old one stops; a
        // new replica that fails within `monitor` rolls the whole service back.
        update_config: { parallelism: 1, delay: '2s', order: 'start-first', failure_action: 'rollback', monitor: '10s', max_failure_ratio: 0 },
        rollback_config: { parallelism: 1, delay: '0s', order: 'start-first', failure_action: 'pause', monitor: '10s', max_failure_ratio: 0 },
      },
    };
  }
  if (scaledUnits(functions).length) services[ACTIVATOR_SERVICE] = activatorService(functions, options.tag ?? TAG_VARIABLE);
  services.gateway = {
    image: gatewayImage(options.tag ?? TAG_VARIABLE),
    read_only: true,
    cap_drop: ['ALL'],
    cap_add: ['CHOWN', 'SETGID', 'SETUID'],
    // Its config from a volume filled from the image (a new one for each task), which `modelfn
    // traffic` writes and reloads in place (builder/docker/traffic.ts): not a swarm config, which
    // cannot change, and whose replacement restarts the task. The gateway's host-mode port
    // allows no second task beside it (start-first), so a restart would fail requests.
    command: ['nginx', '-c', GATEWAY_LIVE.swarmFile, '-g', 'daemon off;'],
    // nginx's request bodies are held there (GATEWAY_BODIES), within its memory limit.
    volumes: [{ ...TMP, tmpfs: { size: GATEWAY_TMP_MIB * 1024 * 1024 } }, { type: 'volume', target: GATEWAY_LIVE.dir }],
    // A new declared config rolls the gateway onto the image that carries it (a changed label is a new task).
    labels: { [GATEWAY_CONFIG_LABEL]: hash },
    // Swarm cannot bind a published port to one address (moby/moby#26696): `host` mode publishes
    // on every interface of the node running the gateway, without the IPVS routing mesh.
    ports: [{ target: GATEWAY_PORT, published: PUBLISHED_PORT, protocol: 'tcp', mode: 'host' }],
    networks: ['functions'],
    deploy: {
      mode: 'replicated',
      replicas: 1,
      endpoint_mode: 'dnsrr',
      resources: resources(GATEWAY_RESOURCES),
      restart_policy: { condition: 'any', delay: '2s', window: '20s' },
      // A host-mode port is held by one task per node: the old gateway must stop first.
      update_config: { parallelism: 1, order: 'stop-first', failure_action: 'rollback', monitor: '5s' },
      rollback_config: { parallelism: 1, order: 'stop-first', failure_action: 'pause' },
    },
  };
  return {
    version: '3.8',
    services,
    networks: { functions: { driver: 'overlay' } },
    ...composeSecrets(functions),
  };
}

/**
 * The stack file's text.
 *
 * @example writeFileSync('deploy/swarm/stack.yml', stackFile(functions));
 */
export function stackFile(functions: readonly ResolvedFunction[], options: { tag?: string } = {}): string {
  const comment = `# docker stack deploy --resolve-image never -c ${FILES.swarmStack} modelfn (npm run deploy:swarm)`;
  return `${GENERATED_HEADER}\n${comment}\n${stringify(stackDocument(functions, options), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}
