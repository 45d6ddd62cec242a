/**
 * The stacks the benchmarks compare modelfn with and through, started the same way by
 * `npm run bench` (bench/run.ts) and `npm run bench:floor` (bench/floor.ts):
 *
 * - the classic stack run natively: the Flask app (bench/flask/app.py) under gunicorn, one
 *   worker per core, behind nginx (bench/flask/nginx.conf), as processes on this machine;
 * - modelfn's compose gateway: `npm run build -- --images` of a functions folder, then
 *   `docker compose up` (nginx and one container per function, published on a loopback port).
 *
 * Each comes with the CPU seconds its processes have used, for CPU per request.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runBuild } from '../build.ts';
import { ROOT, run } from '../builder/docker/images.ts';
import { stackDown, stackUp } from '../builder/docker/compose.ts';
import { freePort } from '../test/docker.ts';

export const CORES = cpus().length;

/** A stack the benchmark started: where it answers, its CPU so far, how to stop it. */
export interface RunningStack {
  url: string;
  /** User + system CPU seconds of the stack's processes so far. */
  cpuSeconds(): Promise<number>;
  stop(): Promise<void>;
}

/** The rows of the wide MLP's requests (784 features), the same on every run and stack. */
export function rowsData(features: number, rows: number): number[][] {
  return Array.from({ length: rows }, (_, r) => Array.from({ length: features }, (_, i) => Math.round((((r + 1) * 7919 + i * 104729) % 10000) / 10) / 1000));
}

/** User + system CPU seconds of one process so far, 0 once it is gone (Linux /proc; ticks of 1/100 s). */
function ownCpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** A process and its descendants now (gunicorn's workers, nginx's, a container's processes). */
function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${all[i]}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        for (const child of readFileSync(`/proc/${all[i]}/task/${task}/children`, 'utf8').split(' ').filter(Boolean)) all.push(Number(child));
      } catch {
        // the task ended meanwhile
      }
    }
  }
  return all;
}

/** CPU seconds of the trees under `pids` (their live processes). */
export function treeCpuSeconds(pids: number[]): number {
  return pids.flatMap(processTree).reduce((n, pid) => n + ownCpuSeconds(pid), 0);
}

/** A process whose stderr's last lines are kept for a failure's message. */
export function startProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}, log: (line: string) => void = () => {}): ChildProcess {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err = (err + d).slice(-2000)));
  child.on('exit', (code) => {
    if (code && code !== 0 && !child.killed) log(`  ! ${command} exited ${code}: ${err}`);
  });
  return child;
}

/** Stops a process (SIGKILL after 10 s) and waits until it exited. */
export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** Polls a URL until it answers 2xx. */
export async function waitOk(url: string, init?: RequestInit, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url, { ...init, signal: AbortSignal.timeout(2000) })).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${url}`);
}

/** The classic stack's nginx.conf (bench/flask/nginx.conf) for an address, an upstream and a folder. */
export function classicNginxConfig(listen: string, upstream: string, dir: string): string {
  return readFileSync(join(ROOT, 'bench/flask/nginx.conf'), 'utf8')
    .replaceAll('{{LISTEN}}', listen).replaceAll('{{UPSTREAM}}', upstream).replaceAll('{{DIR}}', dir);
}

/** Whether the classic stack can run here (python3-flask, python3-sklearn, python3-onnx, gunicorn, nginx). */
export async function classicStackInstalled(): Promise<boolean> {
  return existsSync('/usr/sbin/nginx') && run('/usr/bin/python3', ['-c', 'import flask, sklearn, onnx, gunicorn']).then(() => true, () => false);
}

/**
 * The classic stack run natively: Flask under gunicorn (workers = cores) behind nginx, on
 * loopback ports, iris and the wide MLP at `/iris/predict` and `/mlp/predict`.
 */
export async function classicNative(workDir: string, log: (line: string) => void = () => {}): Promise<RunningStack & { gunicornPid: number }> {
  const gunicornPort = await freePort();
  const port = await freePort();
  const gunicorn = startProcess('/usr/bin/python3', ['-m', 'gunicorn', '-w', String(CORES), '-b', `127.0.0.1:${gunicornPort}`, '--chdir', join(ROOT, 'bench/flask'), 'app:app'], {
    MLP_MODEL: join(ROOT, 'bench/models/mlp.onnx'),
  }, log);
  const nginxDir = join(workDir, 'flask-nginx');
  mkdirSync(nginxDir, { recursive: true });
  writeFileSync(join(nginxDir, 'nginx.conf'), classicNginxConfig(`127.0.0.1:${port}`, `127.0.0.1:${gunicornPort}`, nginxDir));
  const nginx = startProcess('/usr/sbin/nginx', ['-p', nginxDir, '-c', join(nginxDir, 'nginx.conf'), '-g', 'daemon off;'], {}, log);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await stopProcess(nginx, 'SIGQUIT');
    await stopProcess(gunicorn);
  };
  try {
    await waitOk(`${url}/iris/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"instances":[[1,2,3,4]]}' });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, gunicornPid: gunicorn.pid!, cpuSeconds: async () => treeCpuSeconds([gunicorn.pid!, nginx.pid!]), stop };
}

/** The wide MLP's function folders get its model (bench/models/mlp.onnx, kept out of git). */
export function placeMlpModel(): void {
  for (const name of ['mlp', 'mlp-nobatch']) copyFileSync(join(ROOT, 'bench/models/mlp.onnx'), join(ROOT, 'bench/functions', name, 'model.onnx'));
}

/** A functions folder of links to function folders, by name. */
export function linkedFunctions(dir: string, functions: Record<string, string>): string {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, from] of Object.entries(functions)) symlinkSync(from, join(dir, name));
  return dir;
}

/**
 * modelfn's compose gateway for a functions folder: its images built (`npm run build --
 * --images`, tag `bench`), `docker compose up` under `project`, every function ready through
 * the gateway. CPU is that of the containers' processes (nginx, the functions' node), not of
 * Docker's port proxy or daemon.
 */
export async function gatewayStack(functionsDir: string, workDir: string, project: string, functions: string[]): Promise<RunningStack & { env: Record<string, string> }> {
  const port = await freePort();
  const env = { MODELFN_IMAGE_TAG: 'bench', MODELFN_PORT: String(port), MODELFN_PROJECT: project };
  Object.assign(process.env, env);
  const root = join(workDir, 'stack');
  mkdirSync(root, { recursive: true });
  const code = await runBuild({ functionsDir, outDir: join(workDir, 'dist'), root, images: true, check: false, log: () => {} });
  if (code) throw new Error('bench build failed');
  const stack = { root, project, env };
  let url: string;
  try {
    url = await stackUp(stack, functions);
  } catch (err) {
    await stackDown(stack);
    throw err;
  }
  const pids = async () => {
    const ids = (await run('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`])).trim().split('\n').filter(Boolean);
    if (!ids.length) return [];
    return (await run('docker', ['inspect', '-f', '{{.State.Pid}}', ...ids])).trim().split('\n').map(Number).filter((p) => p > 0);
  };
  return { url, env, cpuSeconds: async () => treeCpuSeconds(await pids()), stop: () => stackDown(stack) };
}
