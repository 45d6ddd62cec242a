/**
 * `modelfn rollout` on the real Docker engine, under load through the generated gateway on
 * 127.0.0.1: a version that answers correctly is promoted to 100%; a version whose model fails on
 * real inputs (test/e2e/fixtures/fails-on-real-inputs.onnx: it passes the warm-up, then fails every
 * real flower) is rolled back at its first step, clients seeing failures only in its share and
 * only until the rollback; too little traffic and Ctrl-C roll back too, and a version without a
 * running container is refused before anything changes.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stackDown } from '../../builder/docker/compose.ts';
import { ROOT, postJson } from '../../runtime/testing/index.ts';
import { docker, dockerAvailable, projectLeftovers } from '../docker.ts';
import { FLOWER, flowersStack, type Answer } from './flowers-stack.ts';

const available = dockerAvailable('modelfn rollout on compose (test/e2e/rollout.test.ts)');

describe.runIf(available)('modelfn rollout on the compose stack', () => {
  // Versions 1 and 2 are iris; version 3 passes the warm-up and fails on real flowers.
  const iris = join(ROOT, 'functions/iris/model.onnx');
  const flowers = flowersStack('rollout', { 1: iris, 2: iris, 3: join(import.meta.dirname, 'fixtures/fails-on-real-inputs.onnx') }, "export default { traffic: { '1': 100 } };\n");
  const { project, root, cli } = flowers;

  beforeAll(() => flowers.up(), 600_000);
  afterAll(() => flowers.teardown(), 120_000);

  /** The versions `n` unversioned requests reach, counted. */
  const versionsOf = async (n: number) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const res = await fetch(`${flowers.url}/v2/models/flowers/infer`, postJson(FLOWER));
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      const v = res.headers.get('x-modelfn-version')!;
      counts[v] = (counts[v] ?? 0) + 1;
    }
    return counts;
  };

  /**
   * The answers that failed. A server sheds with 429 and Retry-After when its event loop falls
   * 100 ms behind (runtime/serve/shed.ts): on this shared 2-core machine other work sometimes
   * starves it. That is overload protection, not the rollout's doing: left out, and bounded.
   */
  const failedAmong = (answers: Answer[]) => {
    const shed = answers.filter((a) => a.status === 429);
    expect(shed.length, `${shed.length} of ${answers.length} answers shed`).toBeLessThan(answers.length / 100);
    return answers.filter((a) => a.status !== 200 && a.status !== 429);
  };

  const kept = () => JSON.parse(readFileSync(join(root, 'dist/traffic', `${project}.json`), 'utf8')) as unknown;

  it('promotes a version that answers correctly to 100% in steps, under load, failing no request', async () => {
    const clients = flowers.load(4);
    // A 3 s step's p99 rests on a handful of requests, and one pause of a process on this shared
    // 2-core machine holds that many for 80-125 ms, and two such pauses in a row twice that: the
    // slack keeps such noise from failing a good version here (the p99 rule itself is
    // builder/rollout.test.ts's; the bad version below fails on its errors, not its p99).
    const run = await cli(['rollout', 'flowers', '2', '--interval', '3', '--p99-slack', '1000']);
    await clients.stop();
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
    process.stdout.write(`\n[modelfn rollout flowers 2, ${Math.round(run.ms / 1000)} s]\n${run.stdout}`);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe(`flowers: rollout of version 2 on ${project} from 1=100, compared with version 1; steps 10, 50, 100%, 3 s each`);
    expect(lines.filter((l) => /^ {2}step \d\/3: /.test(l)).map((l) => l.replace(/ \(\d+ ms\)$/, ''))).toEqual(['  step 1/3: 1=90 2=10 in force', '  step 2/3: 1=50 2=50 in force', '  step 3/3: 2=100 in force']);
    const passed = lines.filter((l) => l.startsWith('  ✓ '));
    expect(passed.map((l) => l.split(' after ')[0])).toEqual(['  ✓ 10%', '  ✓ 50%', '  ✓ 100%']);
    expect(passed[0]).toMatch(/: version 2 \d+ requests, 0% errors, p99 [\d.]+ ms; version 1 \d+ requests, 0% errors, p99 [\d.]+ ms$/);
    expect(passed[2]).toMatch(/; version 1 \d+ requests, 0% errors, p99 [\d.]+ ms at an earlier step \(now 0 requests\)$/);
    expect(lines[lines.length - 1]).toBe('flowers: version 2 promoted: 2=100 in force, kept for npm run up until the traffic declared for flowers changes');
    const failed = failedAmong(clients.answers);
    expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([]);
    expect(new Set(clients.answers.map((a) => a.version))).toEqual(new Set(['1', '2']));
    expect(await versionsOf(200)).toEqual({ 2: 200 });
    expect(kept()).toEqual({ flowers: { declared: { 1: 100 }, traffic: { 1: 0, 2: 100 } } });
  }, 180_000);

  it('rolls back a version whose model fails on real inputs at its first step, clients seeing failures only in its share until then', async () => {
    const clients = flowers.load(4);
    await new Promise((r) => setTimeout(r, 1000));
    const run = await cli(['rollout', 'flowers', '3', '--interval', '3']);
    const returned = performance.now();
    await new Promise((r) => setTimeout(r, 2000));
    await clients.stop();
    process.stdout.write(`\n[modelfn rollout flowers 3, ${Math.round(run.ms / 1000)} s]\n${run.stdout}${run.stderr}`);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^modelfn rollout: flowers: version 3 rolled back to 2=100 at step 1 \(10%\): error rate: version 3 100% \((\d+) of \1 requests\) against 0% for version 2 \(0 of \d+\), more than --max-error-rate 1 point above\n$/);
    expect(run.stdout).toMatch(/\n {2}✗ 10% after \d+ s: error rate: version 3 100% /);
    expect(run.stdout).toMatch(/\n {2}rolled back: 2=100 in force again \(\d+ ms\)\n$/);
    const failures = failedAmong(clients.answers);
    // Every failure is the canary's own answer (a 500 saying which version gave it), none the stable version's, none a lost request.
    expect(failures.length).toBeGreaterThan(0);
    expect(failures.filter((a) => a.status !== 500 || a.version !== '3'), JSON.stringify(failures.slice(0, 5))).toEqual([]);
    expect(clients.answers.filter((a) => a.version === '3' && a.status === 200)).toEqual([]);
    // None after the rollback, and requests went on after it.
    expect(failures.filter((a) => a.at > returned)).toEqual([]);
    expect(clients.answers.filter((a) => a.at > returned).length).toBeGreaterThan(20);
    // During the first step (from the first failure to the last), about its 10% of the requests failed.
    const first = failures[0].at;
    const last = failures[failures.length - 1].at;
    const during = clients.answers.filter((a) => a.at >= first && a.at <= last);
    const share = failures.length / during.length;
    process.stdout.write(`[step one: ${failures.length} of ${during.length} requests failed (${(share * 100).toFixed(1)}%) over ${Math.round(last - first)} ms]\n`);
    expect(share).toBeGreaterThan(0.05);
    expect(share).toBeLessThan(0.18);
    expect(await versionsOf(200)).toEqual({ 2: 200 });
    // The split before the rollout, as kept before it.
    expect(kept()).toEqual({ flowers: { declared: { 1: 100 }, traffic: { 1: 0, 2: 100 } } });
  }, 180_000);

  it('rolls back when the new version gets too little traffic to judge, saying so', async () => {
    const run = await cli(['rollout', 'flowers', '1', '--interval', '1', '--max-wait', '2', '--min-requests', '50']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^modelfn rollout: flowers: version 1 rolled back to 2=100 at step 1 \(10%\): too little traffic to judge: version 1 answered 0 requests, fewer than --min-requests 50 in \d+ s \(the step ran --max-wait 2 s longer than --interval\)\n$/);
    expect(run.stdout).toMatch(/\n {2}… 10% after \d+ s: version 1 answered 0 requests, fewer than --min-requests 50; the step goes on/);
    expect(await versionsOf(50)).toEqual({ 2: 50 });
  }, 60_000);

  it('rolls back on Ctrl-C, then exits', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), 'rollout', 'flowers', '1', '--interval', '60'], { cwd: root, env: { ...process.env, ...flowers.env } });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const stepped = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d;
        if (stdout.includes('step 1/3: ')) resolve();
      });
      void exited.then(() => resolve());
    });
    await stepped;
    expect(stdout, stderr).toContain('step 1/3: 1=10 2=90 in force');
    expect(await versionsOf(100)).toMatchObject({ 2: expect.any(Number) });
    child.kill('SIGINT');
    expect(await exited).toBe(1);
    expect(stderr).toBe('modelfn rollout: flowers: version 1 rolled back to 2=100 at step 1 (10%): interrupted (Ctrl-C or SIGTERM)\n');
    expect(stdout).toMatch(/\n {2}rolled back: 2=100 in force again \(\d+ ms\)\n$/);
    expect(await versionsOf(50)).toEqual({ 2: 50 });
  }, 120_000);

  it('refuses to start when a version has no running container, changing nothing', async () => {
    docker(['stop', ...docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=flowers-v3']).trim().split('\n')]);
    const run = await cli(['rollout', 'flowers', '3', '--interval', '1']);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(`modelfn rollout: flowers: version 3 has no running container in ${project} (service flowers-v3); start it with npm run up\n`);
    expect(await versionsOf(20)).toEqual({ 2: 20 });
  }, 60_000);

  it('leaves nothing after down', async () => {
    await stackDown(flowers.options());
    flowers.down = true;
    expect(projectLeftovers(project)).toBe('');
  });
});
