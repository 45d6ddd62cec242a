/**
 * Scale to zero on the real Docker engine: functions that sleep when idle (stopped, or frozen)
 * and wake on the next request through nginx and the activator, with nothing lost; a function
 * that cannot wake; the activator's reach limited to its project; and down leaving nothing.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { runBuild } from '../../build.ts';
import { activatorImage, buildFunctionImage, functionImage, gatewayImage } from '../../builder/docker/images.ts';
import { composeRun, stackDown, stackUp, waitFor } from '../../builder/docker/compose.ts';
import { setTraffic } from '../../builder/docker/traffic.ts';
import { FIXTURES, ROOT, errorOf, postJson } from '../../runtime/testing/index.ts';
import { docker, dockerAvailable, freePort, projectLeftovers } from '../docker.ts';
import { chromiumAvailable, openBrowser } from '../browser.ts';

const available = dockerAvailable('scale to zero (test/e2e/scale.test.ts)');
/**
 * iris stops when idle, frozen freezes, broken will not start once it sleeps, digits never
 * sleeps, busy (a slow model) scales between 1 and 2 replicas with the load; of flowers'
 * two versions, 1 (no traffic) stops when idle and 2 serves, never sleeping.
 */
const FUNCTIONS = ['broken', 'busy', 'digits', 'flowers', 'frozen', 'iris'];
/** slow.onnx runs `iterations` rounds of a 256x256 MatMul, about 10 µs each. */
const busyRequest = (iterations: number) => postJson({ inputs: [
  { name: 'x', datatype: 'FP32', shape: [1, 256], data: new Array(256).fill(0.1) },
  { name: 'iterations', datatype: 'INT64', shape: [1], data: [iterations] },
] });
const IDLE_SECONDS = 3;

describe.runIf(available)('scale to zero on the real Docker engine', () => {
  const tag = `e2e-scale-${process.pid}`;
  const project = `modelfn-scale-${process.pid}`;
  const decoy = `modelfn-decoy-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), 'modelfn-scale-'));
  let url = '';
  let env: Record<string, string> = {};
  let down = false;
  const stack = () => ({ root, project, env });
  const containersOf = (service: string, all = true) => docker(['ps', ...(all ? ['-a'] : []), '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`]).trim().split('\n').filter(Boolean);
  const stateOf = (service: string) => containersOf(service).map((id) => docker(['inspect', '--format', '{{.State.Status}}', id]).trim());
  const asleep = (service: string, state: string) => waitFor(`${service} to be ${state}`, async () => {
    const states = stateOf(service);
    return states.every((s) => s === state) || states.join(', ');
  }, 30_000);
  const iris = (path = '/iris/predict') => fetch(`${url}${path}`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
  const activatorMetrics = () => docker(['exec', containersOf('activator', false)[0], '/usr/local/bin/node', '-e',
    "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);

  beforeAll(async () => {
    mkdirSync(join(root, 'functions'));
    symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
    for (const [name, scale] of [['iris', '{ min: 0, idleSeconds: 3 }'], ['frozen', "{ min: 0, idleSeconds: 3, wake: 'unpause' }"], ['broken', '{ min: 0, idleSeconds: 3 }']]) {
      mkdirSync(join(root, 'functions', name));
      cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions', name, 'model.onnx'));
      writeFileSync(join(root, 'functions', name, 'function.ts'), `export default { scale: ${scale} };\n`);
    }
    cpSync(join(ROOT, 'functions/digits'), join(root, 'functions/digits'), { recursive: true });
    for (const version of ['1', '2']) {
      mkdirSync(join(root, 'functions/flowers', version), { recursive: true });
      cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions/flowers', version, 'model.onnx'));
    }
    writeFileSync(join(root, 'functions/flowers/function.ts'), "export default { traffic: { '1': 0, '2': 100 }, versions: { '1': { scale: { min: 0, idleSeconds: 3 } } } };\n");
    mkdirSync(join(root, 'functions/busy'));
    cpSync(join(FIXTURES, 'slow.onnx'), join(root, 'functions/busy/model.onnx'));
    writeFileSync(join(root, 'functions/busy/function.ts'), 'export default { batching: { enabled: false }, scale: { min: 1, max: 2, concurrency: 2, idleSeconds: 600 } };\n');
    env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
    Object.assign(process.env, env);
    const log: string[] = [];
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => log.push(l) });
    expect(code, log.join('\n')).toBe(0);
    url = await stackUp(stack(), FUNCTIONS);
    // A container of another project, labelled as this project's iris service: never to be touched.
    docker(['create', '--name', decoy, '--label', `com.docker.compose.project=${decoy}`, '--label', 'com.docker.compose.service=iris', functionImage('iris', tag)]);
  }, 600_000);

  afterAll(async () => {
    if (!down) await stackDown(stack()).catch(() => {});
    for (const image of [...FUNCTIONS.map((f) => functionImage(f, tag)), gatewayImage(tag), activatorImage(tag)]) {
      try {
        docker(['rmi', '-f', image]);
      } catch {
        // already gone
      }
    }
    try {
      docker(['rm', '-f', decoy]);
    } catch {
      // already gone
    }
    rmSync(root, { recursive: true, force: true });
  }, 120_000);

  it('puts idle functions to sleep, stopped or frozen, and keeps the others running', async () => {
    await asleep('iris', 'exited');
    await asleep('frozen', 'paused');
    expect(stateOf('digits')).toEqual(['running']);
    expect(stateOf('activator')).toEqual(['running']);
  }, 60_000);

  it('puts a version with its own scale to sleep while the other keeps running, and wakes it for a request on its path, and through the split once modelfn traffic gives it all', async () => {
    await asleep('flowers-v1', 'exited');
    expect(stateOf('flowers-v2')).toEqual(['running']);
    const flower = postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });
    const started = performance.now();
    const res = await fetch(`${url}/v2/models/flowers/versions/1/infer`, flower);
    const ms = performance.now() - started;
    expect(res.status).toBe(200);
    expect(res.headers.get('x-modelfn-version')).toBe('1');
    expect(((await res.json()) as { model_version: string }).model_version).toBe('1');
    process.stdout.write(`\n[figures] flowers version 1, stopped: woken for a versioned request in ${Math.round(ms)} ms\n`);
    expect(stateOf('flowers-v1')).toEqual(['running']);
    // The split still gives version 2 everything, and the activator woke version 1's service alone.
    const unversioned = await fetch(`${url}/v2/models/flowers/infer`, flower);
    expect([unversioned.status, unversioned.headers.get('x-modelfn-version')]).toEqual([200, '2']);
    await unversioned.arrayBuffer();
    expect(activatorMetrics()).toMatch(/modelfn_activator_wakes_total\{function="flowers-v1",mode="start",result="ok"\} [1-9]/);
    // The instant rollback: asleep again, given all the traffic, woken by the split's first request.
    await asleep('flowers-v1', 'exited');
    await setTraffic(root, project, 'flowers', ['1=100'], () => {});
    const rolledBack = await fetch(`${url}/flowers/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }));
    expect([rolledBack.status, rolledBack.headers.get('x-modelfn-version')]).toEqual([200, '1']);
    await rolledBack.arrayBuffer();
    expect(stateOf('flowers-v1')).toEqual(['running']);
  }, 60_000);

  for (const [name, state] of [['iris', 'exited'], ['frozen', 'paused']] as const) {
    it(`wakes ${name} (${state === 'exited' ? 'stopped' : 'frozen'}) for 16 concurrent requests, all answered`, async () => {
      await asleep(name, state);
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 16 }, (_, i) =>
        fetch(`${url}/${name}/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, { 'X-Request-Id': `wake-${name}-${i}` }))));
      const ms = performance.now() - started;
      // A failure names what the clients got (status and body), not only the statuses.
      const failed = await Promise.all(answers.filter((a) => a.status !== 200).map(async (a) => `${a.status} ${await a.text()}`));
      expect(failed, `${name}: answers other than 200`).toEqual([]);
      for (const a of answers) expect(((await a.json()) as { predictions: { label: number }[] }).predictions[0].label).toBe(0);
      process.stdout.write(`\n[figures] ${name}: 16 concurrent requests while ${state === 'exited' ? 'stopped' : 'frozen'}, all answered in ${Math.round(ms)} ms\n`);
      expect(stateOf(name)).toEqual(['running']);
    }, 60_000);
  }

  it.runIf(chromiumAvailable('scale to zero with the gateway page open'))('goes to sleep while the gateway page stays open in Chromium (its /stats polling is not traffic)', async () => {
    expect((await iris()).status).toBe(200);
    expect(stateOf('iris')).toEqual(['running']);
    const browser = await openBrowser();
    try {
      let polls = 0;
      browser.page.on('request', (r) => { if (new URL(r.url()).pathname === '/iris/stats') polls++; });
      await browser.page.goto(`${url}/`);
      // Open for three times the idle time, polling every function's figures every 2 s.
      await new Promise((r) => setTimeout(r, 3 * IDLE_SECONDS * 1000));
      expect(polls).toBeGreaterThanOrEqual(3);
      await asleep('iris', 'exited');
      // The page says so too.
      await browser.page.waitForFunction(() => document.querySelector('tr[data-live="iris"] [data-field=state]')?.textContent === 'asleep', undefined, { timeout: 10_000 });
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('answers a request sent as the function goes to sleep (rounds straddling the idle time)', async () => {
    expect((await iris()).status).toBe(200);
    const statuses: number[] = [];
    // The activator looks once a second: idle gaps from 3.0 to 4.0 s meet it mid-sleep in some round.
    for (const gap of [3000, 3200, 3400, 3600, 3800, 4000]) {
      await new Promise((r) => setTimeout(r, gap));
      const res = await iris();
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    const wakes = /modelfn_activator_wakes_total\{function="iris",mode="start",result="ok"\} (\d+)/.exec(activatorMetrics());
    process.stdout.write(`\n[figures] requests at the moment of sleeping: ${statuses.join(', ')}; iris wakes so far ${wakes?.[1]}\n`);
    expect(statuses).toEqual(new Array(6).fill(200));
  }, 90_000);

  it('exposes wakes and their time by phase in the functions\' and the activator\'s metrics', async () => {
    const text = activatorMetrics();
    for (const phase of ['container_start', 'process_start', 'model_load', 'warm_up', 'ready', 'first_answer']) {
      expect(text).toMatch(new RegExp(`modelfn_activator_wake_seconds_count\\{function="iris",mode="start",phase="${phase}"\\} [1-9]`));
    }
    expect(text).toMatch(/modelfn_activator_wakes_total\{function="frozen",mode="unpause",result="ok"\} [1-9]/);
    expect(text).toMatch(/modelfn_activator_sleeps_total\{function="frozen",mode="unpause"\} [1-9]/);
    const fnMetrics = await (await fetch(`${url}/frozen/metrics`)).text();
    expect(fnMetrics).toMatch(/^modelfn_wakes_total [1-9]/m);
    expect(fnMetrics).toMatch(/^modelfn_startup_seconds\{phase="warm_up"\} /m);
  });

  it('answers 503 JSON with Retry-After when a function cannot wake, while the others keep working', async () => {
    await asleep('broken', 'exited');
    // Its next container holds a corrupt model: it is created (not started) as compose would.
    writeFileSync(join(root, 'dist/broken/model.onnx'), 'not a model any more');
    await buildFunctionImage('broken', join(root, 'dist'));
    await composeRun(stack(), ['up', '--no-start', '--no-deps', 'broken']);
    const started = performance.now();
    const res = await fetch(`${url}/broken/predict`, postJson({ instances: [[5.1, 3.5, 1.4, 0.2]] }, { 'X-Request-Id': 'e2e-broken-wake' }));
    const ms = performance.now() - started;
    const err = await errorOf(res);
    expect(err.status).toBe(503);
    // The container's last log line stays out of the answer, and is in the activator's log with the request's id.
    expect(err.error).toBe("function 'broken' failed to start; retry later");
    expect(res.headers.get('x-request-id')).toBe('e2e-broken-wake');
    // (The activator writes its log in batches, within 50 ms.)
    await waitFor('the cause in the activator\'s log', async () => {
      const logged = docker(['logs', containersOf('activator', false)[0]]).split('\n').filter((l) => l.includes('"request_id":"e2e-broken-wake"'));
      return /model\.onnx: not a valid ONNX model/.test(logged.join('\n')) || logged.join('\n') || 'no line with the request id';
    }, 5000);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(ms).toBeLessThan(15_000);
    process.stdout.write(`\n[figures] a function that cannot wake: 503 JSON after ${Math.round(ms)} ms\n`);
    expect((await iris()).status).toBe(200);
    expect((await fetch(`${url}/digits/predict`, postJson({ instances: [new Array(64).fill(0)] }))).status).toBe(200);
    // It is left stopped, not crash-looping.
    await asleep('broken', 'exited');
  }, 90_000);

  it('adds a replica under sustained load and removes it once the load stops, without a failed request', async () => {
    expect(containersOf('busy', false)).toHaveLength(1);
    const statuses: number[] = [];
    let loading = true;
    const worker = async () => {
      while (loading) {
        const res = await fetch(`${url}/busy/v2/models/busy/infer`, busyRequest(3000));
        statuses.push(res.status);
        await res.arrayBuffer();
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, worker));
    const started = performance.now();
    try {
      await waitFor('a second busy replica', async () => {
        const running = containersOf('busy', false).length;
        return running === 2 || `${running} running`;
      }, 30_000);
      const out = performance.now() - started;
      // The new replica takes a share of the load before the load stops.
      await new Promise((r) => setTimeout(r, 3000));
      loading = false;
      await load;
      process.stdout.write(`\n[figures] autoscale: 1 -> 2 replicas ${(out / 1000).toFixed(1)} s into sustained load (8 connections, concurrency target 2)\n`);
    } finally {
      loading = false;
      await load;
    }
    const stopped = performance.now();
    await waitFor('busy back to one replica', async () => {
      const all = containersOf('busy', true).length;
      return all === 1 || `${all} containers`;
    }, 30_000);
    process.stdout.write(`[figures] autoscale: back to 1 replica ${((performance.now() - stopped) / 1000).toFixed(1)} s after the load stopped; ${statuses.length} requests, ${statuses.filter((x) => x !== 200).length} failed\n`);
    expect(statuses.length).toBeGreaterThan(50);
    expect(statuses.filter((x) => x !== 200)).toEqual([]);
    const text = activatorMetrics();
    expect(text).toMatch(/modelfn_activator_scale_total\{function="busy",direction="out"\} 1/);
    expect((await fetch(`${url}/busy/v2/models/busy/infer`, busyRequest(10))).status).toBe(200);
  }, 90_000);

  it('answers 50 concurrent 10 MB bodies to an awake and to a sleeping function, each served or refused with JSON (503s with Retry-After); the activator and the gateway stay up, within their memory', async () => {
    const activator = containersOf('activator', false)[0];
    const gateway = containersOf('gateway', false)[0];
    const restarts = (id: string) => docker(['inspect', '--format', '{{.RestartCount}} {{.State.StartedAt}} {{.State.OOMKilled}}', id]).trim();
    const before = { activator: restarts(activator), gateway: restarts(gateway) };
    /**
     * A container's memory from the engine's cgroup on this host (v1 or v2): its limit, the most it
     * used since it started (page cache included), what it uses now besides the page cache
     * (anonymous memory and tmpfs, what an OOM kill is about), and how many processes were OOM-killed.
     */
    const memoryOf = (container: string) => {
      const id = docker(['inspect', '--format', '{{.Id}}', container]).trim();
      return () => memory(id);
    };
    const memory = (id: string) => {
      const dirs = [`/sys/fs/cgroup/memory/docker/${id}`, `/sys/fs/cgroup/memory/system.slice/docker-${id}.scope`, `/sys/fs/cgroup/system.slice/docker-${id}.scope`, `/sys/fs/cgroup/docker/${id}`];
      const stat = (text: string, key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
      for (const dir of dirs) {
        if (existsSync(join(dir, 'memory.max_usage_in_bytes'))) {
          const text = readFileSync(join(dir, 'memory.stat'), 'utf8');
          return {
            limit: Number(readFileSync(join(dir, 'memory.limit_in_bytes'), 'utf8')), peak: Number(readFileSync(join(dir, 'memory.max_usage_in_bytes'), 'utf8')),
            used: stat(text, 'total_rss') + stat(text, 'total_shmem'), oomKills: stat(readFileSync(join(dir, 'memory.oom_control'), 'utf8'), 'oom_kill'),
          };
        }
        if (existsSync(join(dir, 'memory.peak'))) {
          const text = readFileSync(join(dir, 'memory.stat'), 'utf8');
          return {
            limit: Number(readFileSync(join(dir, 'memory.max'), 'utf8')), peak: Number(readFileSync(join(dir, 'memory.peak'), 'utf8')),
            used: stat(text, 'anon') + stat(text, 'shmem'), oomKills: stat(readFileSync(join(dir, 'memory.events'), 'utf8'), 'oom_kill'),
          };
        }
      }
      throw new Error(`no memory figures for ${id} under ${dirs.join(', ')}`);
    };
    // The most each used besides page cache, sampled while the bodies arrive.
    const activatorMemory = memoryOf(activator);
    const gatewayMemory = memoryOf(gateway);
    const most = { activator: 0, gateway: 0 };
    const sampler = setInterval(() => {
      most.activator = Math.max(most.activator, activatorMemory().used);
      most.gateway = Math.max(most.gateway, gatewayMemory().used);
    }, 50);
    sampler.unref();
    await asleep('iris', 'exited');
    const MB = 1_000_000;
    const bodyOf = (instance: number[]) => {
      const json = JSON.stringify({ instances: [instance] });
      return Buffer.concat([Buffer.from(json), Buffer.alloc(10 * MB - json.length, ' ')]);
    };
    const bodies = { digits: bodyOf(new Array(64).fill(0)), iris: bodyOf([5.1, 3.5, 1.4, 0.2]) };
    const figures: string[] = [];
    onTestFinished(() => clearInterval(sampler));
    for (const name of ['digits', 'iris'] as const) {
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => {
        try {
          const res = await fetch(`${url}/${name}/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Request-Id': `big-${name}-${i}` }, body: bodies[name] });
          const text = await res.text();
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          return { status: res.status, json, type: res.headers.get('content-type') ?? '', retryAfter: res.headers.get('retry-after'), text: text.slice(0, 200) };
        } catch (err) {
          return { status: 0, json: undefined, type: '', retryAfter: null, text: String((err as Error).cause ?? err) };
        }
      }));
      const byStatus = new Map<number, number>();
      for (const a of answers) byStatus.set(a.status, (byStatus.get(a.status) ?? 0) + 1);
      figures.push(`${name} (${name === 'iris' ? 'asleep' : 'awake'}): ${[...byStatus].map(([status, n]) => `${n} x ${status}`).join(', ')} in ${Math.round(performance.now() - started)} ms`);
      for (const a of answers) {
        // Never a dropped connection or a 500: served (2xx), refused (4xx), or 503 with Retry-After; JSON every time.
        expect(a.status === 503 || (a.status >= 200 && a.status < 300) || (a.status >= 400 && a.status < 500), `${a.status} ${a.text}`).toBe(true);
        expect(a.type, a.text).toMatch(/^application\/json/);
        expect(a.json, a.text).toBeTypeOf('object');
        if (a.status === 503) expect(Number(a.retryAfter), a.text).toBeGreaterThanOrEqual(1);
      }
      // Some of each were served: the counts refuse what is beyond them, not everything.
      expect(byStatus.get(200) ?? 0).toBeGreaterThan(0);
    }
    clearInterval(sampler);
    const used = activatorMemory();
    const gatewayUsed = gatewayMemory();
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    figures.push(`activator at most ${mib(most.activator)} MiB besides page cache (cgroup peak with cache ${mib(used.peak)}) of ${mib(used.limit)} MiB; gateway at most ${mib(most.gateway)} MiB (with cache ${mib(gatewayUsed.peak)}) of ${mib(gatewayUsed.limit)} MiB`);
    process.stdout.write(`\n[figures] 50 concurrent 10 MB POSTs through the gateway: ${figures.join('; ')}\n`);
    // Same containers, never restarted or killed, within their limits, and answering.
    expect(restarts(activator)).toBe(before.activator);
    expect(restarts(gateway)).toBe(before.gateway);
    expect(containersOf('activator', false)).toEqual([activator]);
    expect(used.oomKills).toBe(0);
    expect(gatewayUsed.oomKills).toBe(0);
    // Well within the limits: the activator streams bodies, the gateway's tmpfs is counted.
    expect(most.activator).toBeLessThan(used.limit * 0.75);
    expect(most.gateway).toBeLessThan(gatewayUsed.limit * 0.75);
    expect(activatorMetrics()).toContain('modelfn_activator_requests_total');
    expect((await iris()).status).toBe(200);
    // Every request the activator took is answered: nothing held, no byte counted any more.
    expect(activatorMetrics()).toMatch(/modelfn_activator_held_bytes\{function="iris"\} 0\n/);
    expect(activatorMetrics()).toMatch(/modelfn_activator_requests_held\{function="iris"\} 0\n/);
  }, 240_000);

  it('never touched a container of another project with the same service label', () => {
    expect(docker(['inspect', '--format', '{{.State.Status}} {{.State.StartedAt}}', decoy]).trim()).toBe('created 0001-01-01T00:00:00Z');
  });

  it('goes down leaving no containers, networks or volumes behind', async () => {
    await stackDown(stack());
    down = true;
    expect(projectLeftovers(project)).toBe('');
  });
});
