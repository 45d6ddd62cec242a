/**
 * Docker Swarm: the stack file generated from the function declarations (deploy/swarm/stack.yml)
 * with its gateway config (deploy/swarm/nginx.conf), and the `docker stack` operations that
 * `npm run deploy:swarm` and the tests use.
 *
 * Discovery: every function service runs with `endpoint_mode: dnsrr`, so its name resolves to
 * the addresses of its healthy tasks, and nginx resolves it per request (the `dns` mode of
 * build/render/nginx.ts, as in compose). The `vip` mode would need Swarm's virtual IPs, which the engine
 * makes with the kernel's IPVS: on a kernel built without it (this project's machines, some VM
 * and WSL kernels) a VIP swallows every connection, and so does the routing mesh (`ingress`
 * publishing), which depends on it too. Resolving task addresses works everywhere, balances per
 * request rather than per kept-alive connection, sees added replicas within a second, and lets
 * nginx retry a refused request on another replica.
 */
import { createHash } from 'node:crypto';
import { stringify } from 'yaml';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { HEALTHCHECK, RUNTIME_USER, functionEnvironment } from './compose.ts';
import { functionImage, gatewayImage, run } from '../docker/images.ts';
import { GENERATED_HEADER, nginxConfig } from './nginx.ts';
import { waitFor } from '../docker/compose.ts';

/** Where build/build.ts writes the stack file and the gateway's config, relative to the project root. */
export const STACK_FILE = 'deploy/swarm/stack.yml';
export const SWARM_NGINX_FILE = 'deploy/swarm/nginx.conf';

/**
 * Seconds nginx may keep a DNS answer. Swarm takes a stopping task out of DNS two seconds
 * before it signals the task (its gossip delay), and the runtime stops accepting connections on
 * the signal: an answer kept longer than that (compose's config keeps one 5 s) sends requests
 * to a replica that is no longer listening, which is a failed request when it was the only one.
 */
export const SWARM_DNS_VALID_SECONDS = 1;

/**
 * The gateway's nginx.conf on Swarm: compose's `dns` config with DNS answers kept one second.
 * The stack mounts it over the image's own through a swarm config, so one gateway image serves
 * both; its name carries a hash of the content, since a swarm config cannot change and a new
 * name is what rolls the gateway when the functions change.
 */
export function swarmGatewayConfig(functions: readonly ResolvedFunction[]): string {
  const dns = nginxConfig(functions, { mode: 'dns' });
  const swarm = dns.replace(/ valid=\d+s /, ` valid=${SWARM_DNS_VALID_SECONDS}s `);
  if (swarm === dns) throw new Error('build/render/nginx.ts no longer sets the resolver\'s valid= time; update swarmGatewayConfig');
  return swarm.replace('# Discovery: dns', `# Discovery: dns, answers kept ${SWARM_DNS_VALID_SECONDS} s (Docker Swarm)`);
}

/**
 * What one replica of a function may use, and what the scheduler sets aside for it. The limits
 * are compose's; the reservations are what an idle replica needs (about 40 to 60 MiB measured),
 * with room for a request, and small enough for many replicas on a 2-core machine.
 */
export const REPLICA_RESOURCES = {
  limits: { cpus: 2, memoryMiB: 512 },
  reservations: { cpus: 0.1, memoryMiB: 128 },
} as const;

/** The gateway's share: nginx needs little. */
export const GATEWAY_RESOURCES = {
  limits: { cpus: 1, memoryMiB: 256 },
  reservations: { cpus: 0.05, memoryMiB: 32 },
} as const;

/**
 * Seconds a stopping replica gets to finish its requests before it is killed: its longest
 * request, plus a margin for the shutdown itself.
 */
export function stopGraceSeconds(fn: ResolvedFunction): number {
  return Math.ceil(fn.limits.timeoutMs / 1000) + 5;
}

/** The label every function service carries, so tools can find a function's service. */
export const FUNCTION_LABEL = 'org.modelfn.function';

function resources(r: typeof REPLICA_RESOURCES | typeof GATEWAY_RESOURCES) {
  return {
    limits: { cpus: String(r.limits.cpus), memory: `${r.limits.memoryMiB}M` },
    reservations: { cpus: String(r.reservations.cpus), memory: `${r.reservations.memoryMiB}M` },
  };
}

const TMP = { type: 'tmpfs', target: '/tmp', tmpfs: { size: 64 * 1024 * 1024 } };

/** Secrets the functions' API keys come from, read from `secrets/<name>` beside the stack file. */
function secretsOf(functions: readonly ResolvedFunction[]) {
  const secrets = Object.fromEntries(functions.filter((fn) => fn.auth).map((fn) => [fn.auth!.apiKeys, { file: `./secrets/${fn.auth!.apiKeys}` }]));
  return Object.keys(secrets).length ? { secrets } : {};
}

/**
 * The stack document (the version 3 format `docker stack deploy` reads).
 *
 * Swarm ignores compose's `security_opt`, so `no-new-privileges` cannot be set here: the
 * functions still run as a non-root user, with a read-only root and every capability dropped.
 */
export function stackDocument(functions: readonly ResolvedFunction[], options: { tag?: string } = {}) {
  const hash = createHash('sha256').update(swarmGatewayConfig(functions)).digest('hex').slice(0, 12);
  const gatewayConfig = `gateway-nginx-${hash}`;
  const services: Record<string, unknown> = {};
  for (const fn of functions) {
    services[fn.name] = {
      image: functionImage(fn.name, options.tag),
      init: true,
      user: RUNTIME_USER,
      read_only: true,
      cap_drop: ['ALL'],
      environment: functionEnvironment(fn),
      volumes: [TMP],
      // A task receives traffic only once healthy, which is also what a rolling update waits for.
      healthcheck: { test: HEALTHCHECK, interval: '5s', timeout: '3s', retries: 3, start_period: '10s' },
      stop_grace_period: `${stopGraceSeconds(fn)}s`,
      networks: ['functions'],
      // API keys as a swarm secret, at /run/secrets/<name> where the runtime looks for them.
      ...(fn.auth ? { secrets: [fn.auth.apiKeys] } : {}),
      deploy: {
        mode: 'replicated',
        replicas: fn.replicas,
        endpoint_mode: 'dnsrr',
        labels: { [FUNCTION_LABEL]: fn.name },
        resources: resources(REPLICA_RESOURCES),
        restart_policy: { condition: 'any', delay: '2s', window: '20s' },
        // One replica at a time, the new one started (and healthy) before the old one stops; a
        // new replica that fails within `monitor` rolls the whole service back.
        update_config: { parallelism: 1, delay: '2s', order: 'start-first', failure_action: 'rollback', monitor: '10s', max_failure_ratio: 0 },
        rollback_config: { parallelism: 1, delay: '0s', order: 'start-first', failure_action: 'pause', monitor: '10s', max_failure_ratio: 0 },
      },
    };
  }
  services.gateway = {
    image: gatewayImage(options.tag),
    read_only: true,
    cap_drop: ['ALL'],
    cap_add: ['CHOWN', 'SETGID', 'SETUID'],
    // As in compose: nginx connects per request, so it must reuse TIME_WAIT ports.
    sysctls: { 'net.ipv4.tcp_tw_reuse': 1, 'net.ipv4.ip_local_port_range': '1024 65000' },
    volumes: [TMP],
    configs: [{ source: gatewayConfig, target: '/etc/nginx/nginx.conf' }],
    // Swarm cannot bind a published port to one address (moby/moby#26696): `host` mode publishes
    // on every interface of the node running the gateway, without the IPVS routing mesh.
    ports: [{ target: 8080, published: '${MODELFN_PORT:-8080}', protocol: 'tcp', mode: 'host' }],
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
    configs: { [gatewayConfig]: { file: './nginx.conf' } },
    ...secretsOf(functions),
  };
}

/**
 * The stack file's text.
 *
 * @example writeFileSync('deploy/swarm/stack.yml', stackFile(functions));
 */
export function stackFile(functions: readonly ResolvedFunction[], options: { tag?: string } = {}): string {
  const comment = '# docker stack deploy --resolve-image never -c deploy/swarm/stack.yml modelfn (npm run deploy:swarm)';
  return `${GENERATED_HEADER}\n${comment}\n${stringify(stackDocument(functions, options), { lineWidth: 0, aliasDuplicateObjects: false })}`;
}

/** A stack on the engine: its name, and the folder holding deploy/swarm/stack.yml. */
export interface SwarmStack {
  name: string;
  root: string;
  /** Extra environment for `docker stack deploy` (MODELFN_PORT). */
  env?: NodeJS.ProcessEnv;
}

/** The stack name: MODELFN_STACK, default "modelfn". */
export const stackName = (env: NodeJS.ProcessEnv = process.env) => env.MODELFN_STACK || 'modelfn';

/** A service's full name in the stack. */
export const serviceOf = (stack: Pick<SwarmStack, 'name'>, service: string) => `${stack.name}_${service}`;

/** Whether this engine is in a swarm, and whether it can deploy stacks (it is a manager). */
export async function swarmState(): Promise<{ state: string; manager: boolean }> {
  const out = await run('docker', ['info', '--format', '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}']);
  const [state, manager] = out.trim().split(/\s+/);
  return { state, manager: manager === 'true' };
}

/** Deploys (or updates) the stack; returns at once, see `waitForStack`. */
export async function deployStack(stack: SwarmStack): Promise<string> {
  // `never`: the images are the ones on this engine; a registry would pin their digests.
  return run('docker', ['stack', 'deploy', '--detach=true', '--prune', '--resolve-image', 'never', '-c', `${stack.root}/${STACK_FILE}`, stack.name], {
    env: { ...process.env, ...stack.env },
  });
}

interface ServiceStatus {
  name: string;
  running: number;
  desired: number;
}

/** Running and desired tasks of every service of the stack. */
export async function stackServices(stack: Pick<SwarmStack, 'name'>): Promise<ServiceStatus[]> {
  const out = await run('docker', ['service', 'ls', '--filter', `label=com.docker.stack.namespace=${stack.name}`, '--format', '{{.Name}} {{.Replicas}}']);
  return out.trim().split('\n').filter(Boolean).map((line) => {
    const [name, replicas] = line.split(' ');
    const [running, desired] = replicas.split('/').map(Number);
    return { name, running, desired };
  });
}

/** The gateway's address on this machine. */
export const swarmGatewayUrl = (env: NodeJS.ProcessEnv = process.env) => `http://127.0.0.1:${env.MODELFN_PORT || '8080'}`;

/** Waits until every service runs its desired tasks and every function is ready through the gateway. */
export async function waitForStack(stack: SwarmStack, functions: readonly string[], timeoutMs = 180_000): Promise<string> {
  await waitFor(`the services of stack ${stack.name}`, async () => {
    const services = await stackServices(stack);
    const behind = services.filter((s) => s.running !== s.desired);
    if (services.length < functions.length + 1) return `${services.length} services`;
    return behind.length === 0 || behind.map((s) => `${s.name} ${s.running}/${s.desired}`).join(', ');
  }, timeoutMs);
  const url = swarmGatewayUrl({ ...process.env, ...stack.env });
  for (const name of functions) {
    await waitFor(`${name} through ${url}`, async () => {
      const res = await fetch(`${url}/v2/models/${name}/ready`, { signal: AbortSignal.timeout(3000) });
      return res.ok || `status ${res.status}`;
    }, timeoutMs);
  }
  return url;
}

/** What of the stack is still on the engine: services, containers, networks, configs, secrets. */
export async function stackLeftovers(stack: Pick<SwarmStack, 'name'>): Promise<string[]> {
  const label = `label=com.docker.stack.namespace=${stack.name}`;
  const left: string[] = [];
  for (const [kind, args] of [
    ['service', ['service', 'ls', '-q']],
    ['container', ['ps', '-aq']],
    ['network', ['network', 'ls', '-q']],
    ['config', ['config', 'ls', '-q']],
    ['secret', ['secret', 'ls', '-q']],
  ] as const) {
    const ids = (await run('docker', [...args, '--filter', label])).trim().split('\n').filter(Boolean);
    left.push(...ids.map((id) => `${kind} ${id}`));
  }
  return left;
}

/** Removes the stack and waits until nothing of it is left. */
export async function removeStack(stack: Pick<SwarmStack, 'name'>, timeoutMs = 120_000): Promise<void> {
  if ((await stackServices(stack)).length > 0) await run('docker', ['stack', 'rm', stack.name]);
  await waitFor(`stack ${stack.name} to be gone`, async () => {
    const left = await stackLeftovers(stack);
    // `docker stack rm` removes networks while the last containers may still be stopping, and a
    // network it could not remove then stays: remove those once no container is left.
    if (left.length && left.every((item) => /^(network|config|secret) /.test(item))) {
      for (const item of left) {
        const [kind, id] = item.split(' ');
        await run('docker', [kind, 'rm', id]).catch(() => {});
      }
    }
    return left.length === 0 || left.join(', ');
  }, timeoutMs);
}
