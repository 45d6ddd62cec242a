/**
 * The compose stack: up (bundles, images, containers, then waiting until every function answers
 * through the gateway) and down (containers, networks and volumes removed).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './images.ts';

export interface StackOptions {
  /** Folder holding docker-compose.yml. */
  root: string;
  /** Compose project name; MODELFN_PROJECT, default "modelfn". */
  project?: string;
  env?: NodeJS.ProcessEnv;
}

let composeCommand: string[] | undefined;

/** `docker compose` when the plugin works, else `docker-compose`. */
export function compose(): string[] {
  if (composeCommand) return composeCommand;
  try {
    execFileSync('docker', ['compose', 'version'], { stdio: 'ignore' });
    composeCommand = ['docker', 'compose'];
  } catch {
    try {
      execFileSync('docker-compose', ['version'], { stdio: 'ignore' });
      composeCommand = ['docker-compose'];
    } catch {
      throw new Error("neither 'docker compose' nor 'docker-compose' is available: install Docker Compose");
    }
  }
  return composeCommand;
}

export function projectName(options: StackOptions): string {
  return options.project ?? options.env?.MODELFN_PROJECT ?? process.env.MODELFN_PROJECT ?? 'modelfn';
}

/**
 * The group owning the engine's socket: the activator (scale to zero) runs non-root with it.
 * MODELFN_DOCKER_GID wins; undefined when there is no socket here.
 */
export function dockerGroup(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.MODELFN_DOCKER_GID) return env.MODELFN_DOCKER_GID;
  const socket = statSync('/var/run/docker.sock', { throwIfNoEntry: false });
  return socket ? String(socket.gid) : undefined;
}

/** Runs a compose command for the stack. */
export function composeRun(options: StackOptions, args: string[]): Promise<string> {
  const [command, ...pre] = compose();
  const env = { ...process.env, ...options.env };
  const gid = dockerGroup(env);
  return run(command, [...pre, '-p', projectName(options), '-f', join(options.root, 'docker-compose.yml'), ...args], {
    cwd: options.root,
    env: gid ? { ...env, MODELFN_DOCKER_GID: gid } : env,
  });
}

/** The gateway's address on this machine. */
export function gatewayUrl(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.MODELFN_HOST || '127.0.0.1';
  return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${env.MODELFN_PORT || '8080'}`;
}

/** Polls until `check` resolves true, or fails after `timeoutMs` with the last reason. */
export async function waitFor(what: string, check: () => Promise<true | string>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    try {
      const result = await check();
      if (result === true) return;
      last = result;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}: ${last}`);
}

/** The anonymous volumes of the project's gateway containers (its live nginx.conf, GATEWAY_LIVE). */
async function gatewayVolumes(options: StackOptions): Promise<string[]> {
  const ids = (await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${projectName(options)}`, '--filter', 'label=com.docker.compose.service=gateway'])).split('\n').filter(Boolean);
  if (!ids.length) return [];
  const out = await run('docker', ['inspect', ...ids, '--format', '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}']);
  return out.split(/\s+/).filter((name) => /^[0-9a-f]{64}$/.test(name));
}

/** Starts the stack and waits until every listed function is ready through the gateway. */
export async function stackUp(options: StackOptions, functions: string[]): Promise<string> {
  // Anonymous volumes renewed: a recreated gateway starts from its image's nginx.conf, not the
  // previous container's (the live config modelfn traffic writes, builder/docker/traffic.ts).
  // Compose leaves the replaced container's volume behind: removed once the new one runs.
  const before = await gatewayVolumes(options);
  await composeRun(options, ['up', '-d', '--remove-orphans', '--renew-anon-volumes']);
  const after = new Set(await gatewayVolumes(options));
  for (const volume of before.filter((v) => !after.has(v))) await run('docker', ['volume', 'rm', volume]).catch(() => {});
  const url = gatewayUrl({ ...process.env, ...options.env });
  for (const name of functions) {
    await waitFor(`${name} through ${url}`, async () => {
      const res = await fetch(`${url}/v2/models/${name}/ready`, { signal: AbortSignal.timeout(3000) });
      return res.ok || `status ${res.status}`;
    });
  }
  return url;
}

export async function stackDown(options: StackOptions): Promise<void> {
  await composeRun(options, ['down', '--volumes', '--remove-orphans', '--timeout', '20']);
}
