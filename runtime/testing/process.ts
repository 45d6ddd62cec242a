/**
 * Starting the real server process (`modelfn serve`, what `npm run serve` runs) on a free
 * loopback port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { ROOT } from './helpers.ts';

/** The `modelfn` command; `serve` is its command that serves one function. */
export const MODELFN = resolve(ROOT, 'bin/modelfn.mjs');

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  exited: Promise<{ code: number | null; stderr: string }>;
}

/** Runs `serve <dir> --port 0` and resolves once its "listening" line names the port. */
export function startServerProcess(dir: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [MODELFN, 'serve', dir, '--port', '0', '--host', '127.0.0.1'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<{ code: number | null; stderr: string }>((done) => child.on('exit', (code) => done({ code, stderr })));
  return new Promise((resolveStart, reject) => {
    let buffer = '';
    child.stdout!.on('data', (d) => {
      buffer += d;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        try {
          const entry = JSON.parse(line) as Record<string, unknown>;
          lines.push(entry);
          if (entry.msg === 'listening') resolveStart({ child, url: `http://127.0.0.1:${entry.port}`, lines, exited });
        } catch {
          // not a log line
        }
      }
    });
    void exited.then(({ code, stderr: err }) => reject(new Error(`server exited with ${code} before listening: ${err}`)));
  });
}

/** Runs the serve command to completion (for start-up failures). */
export async function runServe(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [MODELFN, 'serve', ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((done) => child.on('exit', done));
  return { code, stdout, stderr };
}
