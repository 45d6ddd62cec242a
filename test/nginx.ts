/**
 * The gateway's own nginx (its image, nginx 1.30) on a loopback port for tests, in front of
 * servers the test runs on loopback: a generated config moved to a free port, run on the host's
 * network so its upstreams may be 127.0.0.1, and removed afterwards. Skipped with a printed
 * reason where the engine or the image is missing, except in CI (test/docker.ts decides).
 * Also the nginx installed on the machine, run the same way without Docker.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GATEWAY_PAGE } from '../builder/policy.ts';
import { freePort, gatewayNginxImage } from './docker.ts';

/** The gateway's nginx image, or undefined (printing why) where tests may skip. */
export const nginxImage = gatewayNginxImage;

export interface LocalNginx {
  url: string;
  /** What nginx wrote to its logs. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Runs `conf` (a generated nginx.conf) on a free loopback port, serving `page` as the root page.
 *
 * @example const gateway = await startNginx(image, nginxConfig(functions, { mode: 'vip' }), page, dir);
 */
export async function startNginx(image: string, conf: string, page: string, dir: string): Promise<LocalNginx> {
  mkdirSync(dir, { recursive: true });
  // nginx's workers run as another user: they must be able to read the files.
  chmodSync(dirname(dir), 0o755);
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'index.html'), page);
  const port = await freePort();
  const moved = conf.replace(/listen \d+ default_server;/, `listen 127.0.0.1:${port} default_server;`);
  if (!moved.includes(`listen 127.0.0.1:${port}`)) throw new Error('the generated nginx config no longer has the listen line this helper moves');
  writeFileSync(join(dir, 'nginx.conf'), moved);
  const name = `modelfn-test-nginx-${process.pid}-${port}`;
  execFileSync('docker', ['run', '-d', '--name', name, '--network', 'host',
    '-v', `${join(dir, 'nginx.conf')}:/etc/nginx/nginx.conf:ro`, '-v', `${join(dir, 'index.html')}:${GATEWAY_PAGE.image}:ro`, image], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const log = () => {
    try {
      return execFileSync('docker', ['logs', '--tail', '200', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      return String((err as { stderr?: string }).stderr ?? err);
    }
  };
  const stop = async () => {
    execFileSync('docker', ['rm', '-f', name], { stdio: 'ignore' });
  };
  for (let i = 0; ; i++) {
    if (await fetch(`${url}/v2/health/live`).then((r) => r.ok, () => false)) break;
    if (i > 100) {
      const text = log();
      await stop();
      throw new Error(`nginx did not answer:\n${text}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, log, stop };
}

/**
 * The nginx binary installed on this machine, for tests that run the generated config on
 * loopback without Docker; undefined (printing why) where they may skip, an error in CI.
 */
export function installedNginx(what: string): string | undefined {
  const binary = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(existsSync);
  if (!binary && process.env.CI === 'true') throw new Error('CI=true but nginx is not installed (.ci/run installs it)');
  if (!binary) process.stdout.write(`\n[skipped] ${what}: nginx is not installed on this machine\n`);
  return binary;
}

/**
 * Runs the installed nginx on `conf` (a generated config already listening on 127.0.0.1) in the
 * foreground, its pid file and logs in `dir`; waits until it answers. Stop it with stopNginx.
 *
 * @example const nginx = await runInstalledNginx(binary, conf, dir, `http://127.0.0.1:${port}`);
 */
export async function runInstalledNginx(binary: string, conf: string, dir: string, url: string): Promise<ChildProcess> {
  writeFileSync(join(dir, 'nginx.conf'), conf.replace('pid /tmp/nginx.pid;', `pid ${dir}/nginx.pid;`));
  // nginx opens /dev/stderr and /dev/stdout itself, which a pipe cannot provide: give it a file.
  const log = openSync(join(dir, 'nginx.log'), 'w');
  const nginx = spawn(binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', log, log] });
  closeSync(log);
  for (let i = 0; i < 50; i++) {
    if (await fetch(`${url}/v2/health/live`).then((r) => r.ok, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return nginx;
}

/** Stops an nginx runInstalledNginx started, and waits until it has exited. */
export async function stopNginx(nginx: ChildProcess | undefined): Promise<void> {
  if (!nginx || nginx.exitCode !== null) return;
  nginx.kill('SIGTERM');
  await new Promise((r) => nginx.once('exit', r));
}
