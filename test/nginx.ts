/**
 * A real nginx on a loopback port for tests: a generated config moved to a free port and a
 * folder of its own, run in the foreground and stopped by its pid. Skipped with a printed reason
 * where nginx is missing, except in CI (CI=true), where a missing nginx fails the run.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GATEWAY_PAGE } from '../build/policy.ts';
import { freePort } from './docker.ts';

/** The nginx binary, or undefined (printing why) where tests may skip. */
export function nginxBinary(suite: string): string | undefined {
  const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find(existsSync);
  if (nginx) return nginx;
  if (process.env.CI === 'true') throw new Error(`${suite}: CI=true but nginx is not installed (.ci/run installs it)`);
  process.stdout.write(`\n[skipped] ${suite}: nginx is not installed on this machine\n`);
  return undefined;
}

export interface LocalNginx {
  url: string;
  /** What nginx wrote to its logs. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Runs `conf` (a generated nginx.conf) on a free loopback port, serving `page` as the root page.
 *
 * @example const gateway = await startNginx(nginx, nginxConfig(functions, { mode: 'dns' }), page, dir);
 */
export async function startNginx(nginx: string, conf: string, page: string, dir: string): Promise<LocalNginx> {
  mkdirSync(dir, { recursive: true });
  // nginx's workers run as another user: they must be able to reach the page.
  chmodSync(dirname(dir), 0o755);
  chmodSync(dir, 0o755);
  writeFileSync(join(dir, 'index.html'), page);
  const port = await freePort();
  const moved = conf
    .replace(/listen \d+ default_server;/, `listen 127.0.0.1:${port} default_server;`)
    .replace('pid /tmp/nginx.pid;', `pid ${dir}/nginx.pid;`)
    .replace(`alias ${GATEWAY_PAGE.image};`, `alias ${dir}/index.html;`);
  if (!moved.includes(`alias ${dir}/index.html;`)) throw new Error('the generated nginx config no longer has the page alias this helper moves');
  writeFileSync(join(dir, 'nginx.conf'), moved);
  // nginx opens /dev/stderr and /dev/stdout itself, which a pipe cannot provide: give it a file.
  const logFile = join(dir, 'nginx.log');
  const fd = openSync(logFile, 'w');
  const child = spawn(nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  const url = `http://127.0.0.1:${port}`;
  const log = () => readFileSync(logFile, 'utf8');
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}):\n${log()}`);
    if (await fetch(`${url}/v2/health/live`).then((r) => r.ok, () => false)) break;
    if (i > 100) throw new Error(`nginx did not answer:\n${log()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    log,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    },
  };
}
