/**
 * Docker Swarm operations on the engine: deploy the generated stack (deploy/swarm/stack.yml),
 * wait until it serves, list what is left of it, remove it. The files come from
 * builder/render/swarm.ts; `modelfn deploy` / `modelfn undeploy` and the tests use these.
 */
import { readConfig } from '../../runtime/core/config.ts';
import { runBuild } from '../../build.ts';
import { discoverFunctions } from '../functions.ts';
import { FILES } from '../policy.ts';
import { dockerGroup, waitFor } from './compose.ts';
import { run } from './images.ts';

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
  const env = { ...process.env, ...stack.env };
  // The activator (scale to zero) runs non-root with the socket's group.
  const gid = dockerGroup(env);
  return run('docker', ['stack', 'deploy', '--detach=true', '--prune', '--resolve-image', 'never', '-c', `${stack.root}/${FILES.swarmStack}`, stack.name], {
    env: gid ? { ...env, MODELFN_DOCKER_GID: gid } : env,
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

async function requireManager(): Promise<void> {
  const { state, manager } = await swarmState();
  if (state !== 'active' || !manager) {
    throw new Error(`this Docker engine is not a swarm manager (swarm: ${state}). Run \`docker swarm init\` first `
      + '(one machine: `docker swarm init --advertise-addr 127.0.0.1`), or point DOCKER_HOST at a manager');
  }
}

/**
 * `modelfn deploy`: bundles and images, `docker stack deploy`, then waits until every service runs
 * its replicas and every function answers through the gateway. Resolves to the exit code.
 */
export async function deploySwarm(root: string, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env, arch?: string): Promise<number> {
  const stack = { name: stackName(env), root };
  await requireManager();
  // The gateway image keeps the stack's changes by modelfn traffic (until a declared split changes).
  const code = await runBuild({ functionsDir: `${root}/functions`, outDir: `${root}/dist`, root, images: true, arch, check: false, log, trafficStack: stack.name });
  if (code !== 0) return code;
  const { functions } = await discoverFunctions(`${root}/functions`, readConfig({}));
  log(`\ndeploying stack ${stack.name}...`);
  log((await deployStack(stack)).trimEnd());
  const url = await waitForStack(stack, functions.map((f) => f.name));
  log(await run('docker', ['stack', 'services', stack.name]));
  log(`modelfn is up on Docker Swarm at ${url}/ (published on every interface of the node: Swarm cannot bind one address)`);
  return 0;
}

/** `modelfn undeploy`: `docker stack rm`, then waits until nothing of the stack is left. */
export async function undeploySwarm(root: string, log: (line: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const stack = { name: stackName(env), root };
  await requireManager();
  await removeStack(stack);
  log(`stack ${stack.name} removed: services, containers, networks and configs`);
  return 0;
}
