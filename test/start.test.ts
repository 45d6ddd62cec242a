/**
 * `npm start` and `npx modelfn start` as a person runs them: npm prints no warning about the
 * project's configuration, and stopping the npm or npx process by its pid (a process manager,
 * `kill <pid>`) stops the server too.
 */
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../runtime/testing/index.ts';
import { freePort } from './docker.ts';
import { shellEnv } from './process.ts';

const groups: number[] = [];
afterAll(() => {
  // Whatever the test left behind goes, by the group the test started.
  for (const pgid of groups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Starts `command` as a person would, waits until it serves, and SIGTERMs the pid it started (npm's or npx's). */
async function startThenKill(command: string, args: string[]) {
  const port = await freePort();
  const npm = spawn(command, args, { cwd: ROOT, env: shellEnv({ PORT: String(port), MODELFN_ACCESS_LOG: 'false' }), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  groups.push(npm.pid!);
  let output = '';
  npm.stdout.on('data', (d: Buffer) => (output += d));
  npm.stderr.on('data', (d: Buffer) => (output += d));
  const exited = new Promise<number | null>((done) => npm.once('exit', (code) => done(code)));
  const deadline = Date.now() + 150_000;
  while (!output.includes('modelfn: serving')) {
    if (npm.exitCode !== null || Date.now() > deadline) throw new Error(`${command} did not serve:\n${output}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  expect((await fetch(`http://127.0.0.1:${port}/v2/health/ready`)).status).toBe(200);
  expect(output).not.toMatch(/npm warn|Unknown (project|user) config/i);

  // The pid of the npm process, not its group: what `kill <pid>` or a process manager signals.
  process.kill(npm.pid!, 'SIGTERM');
  const code = await exited;
  // Nothing of the group is left running: no orphaned server, and the port is free again.
  let left = true;
  for (let i = 0; i < 100 && left; i++) {
    left = alive(-npm.pid!);
    if (left) await new Promise((r) => setTimeout(r, 100));
  }
  expect(left, output).toBe(false);
  await expect(fetch(`http://127.0.0.1:${port}/v2/health/live`)).rejects.toThrow();
  return { code, output: () => output };
}

describe('npm start', () => {
  it('warns about nothing, and stops with its server when the npm process gets SIGTERM', { timeout: 180_000 }, async () => {
    const { code, output } = await startThenKill('npm', ['start']);
    expect(code).toBe(0);
    expect(output()).toContain('"msg":"signal received","signal":"SIGTERM"');
  });

  it('npx modelfn start, the documented entry, stops with its server when the npx process gets SIGTERM', { timeout: 180_000 }, async () => {
    const { output } = await startThenKill('npx', ['modelfn', 'start']);
    // npx runs it under a shell that does not pass the signal on: the server sees its parent go.
    expect(output()).toMatch(/the process that started it \(pid \d+, npx\) is gone; stopping/);
  });

  it('npx modelfn warns about nothing either', async () => {
    const npx = spawn('npx', ['modelfn', 'list', '--help'], { cwd: ROOT, env: shellEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    npx.stderr.on('data', (d: Buffer) => (stderr += d));
    const code = await new Promise<number | null>((done) => npx.once('exit', done));
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });
});
