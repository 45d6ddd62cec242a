/**
 * Tests that need the real Docker engine: skipped with a printed reason on a machine without
 * one, but never in CI (CI=true), where a missing engine fails the run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

function engineAnswers(): boolean {
  try {
    execFileSync('docker', ['info', '--format', '{{.ServerVersion}}'], { stdio: 'ignore', timeout: 15_000 });
    return true;
  } catch {
    return false;
  }
}

/** True when the tests may use Docker; throws in CI when no engine answers. */
export function dockerAvailable(suite: string): boolean {
  if (engineAnswers()) return true;
  if (process.env.CI === 'true') throw new Error(`${suite}: CI=true but no Docker engine answers (.ci/run starts one)`);
  process.stdout.write(`\n[skipped] ${suite}: no Docker engine answers on this machine (start one with scripts/docker-engine.sh start)\n`);
  return false;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

export function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 120_000 });
}

/**
 * Which replica answered each request, from the gateway's JSON access log: the number of
 * requests whose id matches `requestId` per upstream address. nginx writes its log in batches
 * (flush=1s), so wait a moment after the requests.
 */
/**
 * Sends `send(i)` until the gateway's log shows `replicas` distinct upstreams answering requests
 * whose id matches `warmUp` (a replica joins the gateway's pool only once the engine's DNS lists
 * it, after it turns healthy, then nginx re-resolves): what a test measures after it is the
 * spread itself, not the engine's lag.
 */
export async function untilEveryReplicaAnswers(gatewayContainer: string, replicas: number, warmUp: RegExp, send: (i: number) => Promise<void>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let round = 0; ; round++) {
    for (let i = 0; i < replicas * 3; i++) await send(round * replicas * 3 + i);
    const seen = await answersPerReplica(gatewayContainer, warmUp);
    if (seen.size >= replicas) return;
    if (Date.now() > deadline) throw new Error(`only ${seen.size} of ${replicas} replicas answered through the gateway within ${timeoutMs} ms`);
  }
}

/**
 * The gateway's answers to the requests whose id matches, by replica, from nginx's access log
 * (which it writes every second). With `expected`, waits until that many are logged (at most 10 s)
 * rather than a fixed time.
 */
export async function answersPerReplica(gatewayContainer: string, requestId: RegExp, expected = 0): Promise<Map<string, number>> {
  const deadline = Date.now() + 10_000;
  await new Promise((r) => setTimeout(r, 1500));
  for (;;) {
    const counts = new Map<string, number>();
    for (const line of docker(['logs', gatewayContainer]).split('\n')) {
      if (!line.startsWith('{')) continue;
      const entry = JSON.parse(line) as { request_id?: string; upstream?: string };
      if (!entry.request_id || !requestId.test(entry.request_id) || !entry.upstream) continue;
      counts.set(entry.upstream, (counts.get(entry.upstream) ?? 0) + 1);
    }
    const logged = [...counts.values()].reduce((a, b) => a + b, 0);
    if (logged >= expected || Date.now() > deadline) return counts;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * The nginx image the gateway is built on (nginx/Dockerfile's NGINX_IMAGE), when the engine has
 * it: the gateway's config needs nginx >= 1.27.3 (upstream `server ... resolve`), newer than the
 * nginx Debian 12 installs, so config checks run in that image. Skipped with a printed reason
 * without an engine or the image, except in CI, where .ci/run provides both.
 */
export function gatewayNginxImage(suite: string): string | undefined {
  const image = /^ARG NGINX_IMAGE=(\S+)$/m.exec(readFileSync(join(import.meta.dirname, '../nginx/Dockerfile'), 'utf8'))?.[1];
  if (!image) throw new Error('nginx/Dockerfile names no NGINX_IMAGE');
  if (!dockerAvailable(suite)) return undefined;
  try {
    execFileSync('docker', ['image', 'inspect', image], { stdio: 'ignore' });
    return image;
  } catch {
    if (process.env.CI === 'true') throw new Error(`${suite}: CI=true but the image ${image} is missing (.ci/run builds it with scripts/base-images.sh)`);
    process.stdout.write(`\n[skipped] ${suite}: the image ${image} is missing (scripts/base-images.sh builds it)\n`);
    return undefined;
  }
}

/** What a compose project left on the engine: containers, networks, volumes (empty when nothing). */
export function projectLeftovers(project: string): string {
  const label = `label=com.docker.compose.project=${project}`;
  return [['ps', '-aq'], ['network', 'ls', '-q'], ['volume', 'ls', '-q']].map((args) => docker([...args, '--filter', label]).trim()).join('');
}
