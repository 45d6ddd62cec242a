/**
 * The generated stack on a real single-node Docker Swarm: deployed with `docker stack deploy`,
 * every function through the gateway on 127.0.0.1, a function scaled up and down, rolling
 * updates under load (one that succeeds, one that rolls itself back), scale to zero through the
 * activator (a service scaled to 0 and back, a task frozen and thawed, one that cannot wake),
 * a function's split changed under load with `modelfn traffic`, and removal.
 *
 * The engine joins a swarm only for this test (on loopback), and leaves it afterwards, when it
 * was not in one already.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBuild } from '../../build.ts';
import { activatorImage, functionImage, gatewayImage, run } from '../../builder/docker/images.ts';
import { waitFor } from '../../builder/docker/compose.ts';
import { FUNCTION_LABEL, GATEWAY_LIVE } from '../../builder/policy.ts';
import { splitInForce } from '../../builder/docker/traffic.ts';
import { deployStack, removeStack, serviceOf, stackLeftovers, swarmState, waitForStack, type SwarmStack } from '../../builder/docker/swarm.ts';
import { ROOT, errorOf, postJson } from '../../runtime/testing/index.ts';
import { answersPerReplica, docker, dockerAvailable, freePort, untilEveryReplicaAnswers } from '../docker.ts';

const available = dockerAvailable('swarm stack (test/e2e/swarm.test.ts)');
const FUNCTIONS = ['digits', 'iris', 'vad'];
/** iris copies that scale to zero: sleepy's service to 0 replicas, frozen's task paused. */
const SCALED = ['frozen', 'sleepy'];
const DIGITS = { instances: [new Array(64).fill(1)] };
const IRIS = { instances: [[5.1, 3.5, 1.4, 0.2]] };
/** flowers: two versions of the iris model, split 80/20 (modelfn traffic on Swarm). */
const FLOWER = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] };

/** A service's spec and state, as the engine holds it. */
function inspect(service: string): any {
  return JSON.parse(docker(['service', 'inspect', service]))[0];
}

/** Ids of the running containers of a service. */
function containers(service: string): string[] {
  return docker(['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`]).trim().split('\n').filter(Boolean);
}

/**
 * Sends requests from 4 concurrent workers while `during` runs, and a second beyond; bounded in
 * count and time. Resolves to every status (0: no answer at all).
 */
async function underLoad(url: string, body: unknown, during: () => Promise<void>): Promise<number[]> {
  const statuses: number[] = [];
  const deadline = Date.now() + 240_000;
  let done = false;
  const worker = async () => {
    while (!done && Date.now() < deadline && statuses.length < 200_000) {
      try {
        const res = await fetch(url, { ...postJson(body), signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        statuses.push(res.status);
      } catch {
        statuses.push(0);
      }
    }
  };
  const workers = [worker(), worker(), worker(), worker()];
  try {
    await new Promise((r) => setTimeout(r, 1000));
    await during();
    await new Promise((r) => setTimeout(r, 1000));
  } finally {
    done = true;
    await Promise.all(workers);
  }
  return statuses;
}

/** Waits until a service's update has ended, and answers how: completed, rollback_completed, paused... */
async function updateOutcome(service: string): Promise<string> {
  let state = '';
  await waitFor(`the update of ${service}`, async () => {
    state = inspect(service).UpdateStatus?.State ?? 'not started';
    return /completed|paused/.test(state) || state;
  }, 150_000);
  return state;
}

const failed = (statuses: number[]) => statuses.filter((s) => s !== 200);
const log = (line: string) => process.stdout.write(`[swarm] ${line}\n`);

describe.runIf(available)('the stack on a single-node Docker Swarm', () => {
  const tag = `swarm-${process.pid}`;
  const root = mkdtempSync(join(tmpdir(), 'modelfn-swarm-'));
  const stack: SwarmStack = { name: `modelfn-swarm-${process.pid}`, root, env: {} };
  const broken = `${functionImage('digits', tag)}-broken`;
  const brokenSleepy = `${functionImage('sleepy', tag)}-broken`;
  const decoy = `modelfn-swarm-decoy-${process.pid}`;
  const buildLog: string[] = [];
  let joined = false;
  let gwbridgeExisted = true;
  let removed = false;
  let url = '';

  beforeAll(async () => {
    // The repository's functions, with digits declared at two replicas.
    cpSync(join(ROOT, 'functions'), join(root, 'functions'), { recursive: true });
    symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
    writeFileSync(join(root, 'functions/digits/function.ts'), 'export default { replicas: 2 };\n');
    for (const [name, scale] of [['sleepy', '{ min: 0, idleSeconds: 3 }'], ['frozen', "{ min: 0, idleSeconds: 3, wake: 'unpause' }"]]) {
      mkdirSync(join(root, 'functions', name));
      cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions', name, 'model.onnx'));
      writeFileSync(join(root, 'functions', name, 'function.ts'), `export default { scale: ${scale} };\n`);
    }
    for (const version of ['1', '2']) {
      mkdirSync(join(root, 'functions/flowers', version), { recursive: true });
      cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions/flowers', version, 'model.onnx'));
    }
    writeFileSync(join(root, 'functions/flowers/function.ts'), "export default { traffic: { '1': 80, '2': 20 } };\n");
    stack.env = { MODELFN_PORT: String(await freePort()) };
    process.env.MODELFN_IMAGE_TAG = tag;
    const code = await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => buildLog.push(l) });
    expect(code, buildLog.join('\n')).toBe(0);

    const { state, manager } = await swarmState();
    if (state === 'inactive') {
      gwbridgeExisted = docker(['network', 'ls', '-q', '--filter', 'name=^docker_gwbridge$']).trim() !== '';
      docker(['swarm', 'init', '--advertise-addr', '127.0.0.1', '--listen-addr', '127.0.0.1:2377']);
      joined = true;
    } else if (state !== 'active' || !manager) {
      throw new Error(`this engine's swarm state is '${state}'${manager ? '' : ', not a manager'}: the test needs a manager or no swarm at all`);
    }
    const started = performance.now();
    await deployStack(stack);
    url = await waitForStack(stack, [...FUNCTIONS, ...SCALED, 'flowers']);
    // A container labelled as this stack's sleepy task but of another stack: never to be touched.
    docker(['create', '--name', decoy, '--label', `com.docker.stack.namespace=${decoy}`, '--label', `com.docker.swarm.service.name=${serviceOf(stack, 'sleepy')}`, functionImage('sleepy', tag)]);
    log(`stack ${stack.name} deployed and ready in ${Math.round(performance.now() - started)} ms at ${url}`);
  }, 600_000);

  afterAll(async () => {
    if (!removed) await removeStack(stack).catch((err) => log(`removing the stack: ${(err as Error).message}`));
    if (joined) {
      docker(['swarm', 'leave', '--force']);
      if (!gwbridgeExisted) {
        try {
          docker(['network', 'rm', 'docker_gwbridge']);
        } catch {
          // still held by something else: leave it
        }
      }
    }
    try {
      docker(['rm', '-f', decoy]);
    } catch {
      // never made
    }
    for (const image of [...[...FUNCTIONS, ...SCALED, 'flowers'].map((f) => functionImage(f, tag)), gatewayImage(tag), activatorImage(tag), broken, brokenSleepy]) {
      try {
        docker(['rmi', '-f', image]);
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  }, 180_000);

  it('runs every function at its declared replicas, with the declared limits, health checks and update policy', () => {
    for (const name of FUNCTIONS) {
      const { Spec } = inspect(serviceOf(stack, name));
      const container = Spec.TaskTemplate.ContainerSpec;
      expect(Spec.Labels[FUNCTION_LABEL]).toBe(name);
      expect(Spec.Mode.Replicated.Replicas).toBe(name === 'digits' ? 2 : 1);
      expect(container).toMatchObject({ Image: functionImage(name, tag), User: '65532:65532', ReadOnly: true, Init: true, CapabilityDrop: ['ALL'] });
      expect(container.Healthcheck.Test).toEqual(['CMD', '/usr/local/bin/node', '/app/healthcheck.mjs']);
      const limit = name === 'vad' ? { MODELFN_BODY_LIMIT: '26214400', MODELFN_TIMEOUT_MS: '60000' } : { MODELFN_BODY_LIMIT: '10485760', MODELFN_TIMEOUT_MS: '30000' };
      expect([...container.Env].sort()).toEqual(Object.entries({ ...limit, MODELFN_ACCESS_LOG: 'false', MODELFN_PEERS: `${name}:8080` }).map(([k, v]) => `${k}=${v}`).sort());
      expect(Spec.UpdateConfig).toMatchObject({ Parallelism: 1, Order: 'start-first', FailureAction: 'rollback' });
      expect(Spec.RollbackConfig).toMatchObject({ Order: 'start-first' });
      expect(Spec.TaskTemplate.Resources.Limits).toEqual({ NanoCPUs: 2e9, MemoryBytes: 512 * 1024 ** 2 });
      expect(containers(serviceOf(stack, name))).toHaveLength(name === 'digits' ? 2 : 1);
    }
    expect(buildLog.join('\n')).toContain(`image ${gatewayImage(tag)}`);
  });

  it('answers through the gateway on 127.0.0.1: routes, custom routes, limits and JSON errors', async () => {
    const index = (await (await fetch(`${url}/`)).json()) as { functions: { name: string; replicas: number }[] };
    expect(index.functions.map((f) => [f.name, f.replicas])).toEqual([['digits', 2], ['flowers', 1], ['frozen', 1], ['iris', 1], ['sleepy', 1], ['vad', 1]]);
    expect((await fetch(`${url}/digits/predict`, postJson(DIGITS))).status).toBe(200);
    const infer = await fetch(`${url}/v2/models/iris/infer`, postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [6.7, 3.0, 5.2, 2.3] }] }));
    expect(infer.status).toBe(200);
    const species = await fetch(`${url}/iris/species`, postJson({ flowers: [[6.7, 3.0, 5.2, 2.3]] }, { 'X-Request-Id': 'swarm-trace' }));
    expect(species.headers.get('x-request-id')).toBe('swarm-trace');
    expect(((await species.json()) as { predictions: { species: string }[] }).predictions[0].species).toBe('virginica');
    const wav = readFileSync(join(ROOT, 'functions/vad/test/speech.wav'));
    const segments = await fetch(`${url}/vad/segments`, { method: 'POST', headers: { 'Content-Type': 'audio/wav' }, body: wav });
    expect(((await segments.json()) as { segments: unknown[] }).segments).toHaveLength(2);
    const tooBig = await fetch(`${url}/iris/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'x'.repeat(10 * 1024 * 1024 + 1) });
    expect((await errorOf(tooBig)).status).toBe(413);
    expect((await errorOf(await fetch(`${url}/v2/models/nope/ready`))).status).toBe(404);
  });

  /** The states of a function's task containers (paused ones included). */
  const taskStates = (name: string) => containers(serviceOf(stack, name)).map((id) => docker(['inspect', '--format', '{{.State.Status}}', id]).trim());
  const asleep = (name: string) => waitFor(`${name} asleep`, async () => {
    const states = taskStates(name);
    const desired = inspect(serviceOf(stack, name)).Spec.Mode.Replicated.Replicas;
    if (name === 'sleepy') return (desired === 0 && states.length === 0) || `${desired} desired, ${states.join(', ') || 'no task'}`;
    return (desired === 1 && states.join() === 'paused') || `${desired} desired, ${states.join(', ') || 'no task'}`;
  }, 60_000);

  it('puts idle scaled functions to sleep: a service scaled to 0, a task frozen in place; the others keep running', async () => {
    await asleep('sleepy');
    await asleep('frozen');
    expect(containers(serviceOf(stack, 'iris'))).toHaveLength(1);
    expect(containers(serviceOf(stack, 'activator'))).toHaveLength(1);
  }, 90_000);

  for (const name of ['sleepy', 'frozen']) {
    it(`wakes ${name} (${name === 'sleepy' ? 'scaled up from 0' : 'thawed'}) for 16 concurrent requests through the gateway, all answered`, async () => {
      await asleep(name);
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 16 }, () => fetch(`${url}/${name}/predict`, postJson(IRIS))));
      const ms = performance.now() - started;
      // Any refusal is shown with its Retry-After and body: the server's shedder and the model's queue word theirs apart.
      const refusals = await Promise.all(answers.filter((a) => a.status !== 200).map(async (a) => `${a.status} Retry-After ${a.headers.get('retry-after')}: ${await a.text()}`));
      expect(answers.map((a) => a.status), refusals.join('\n')).toEqual(new Array(16).fill(200));
      for (const a of answers) expect(((await a.json()) as { predictions: { label: number }[] }).predictions[0].label).toBe(0);
      log(`[figures] ${name}: 16 concurrent requests while ${name === 'sleepy' ? 'scaled to 0' : 'frozen'}, all answered in ${Math.round(ms)} ms`);
      expect(taskStates(name)).toEqual(['running']);
      expect(inspect(serviceOf(stack, name)).Spec.Mode.Replicated.Replicas).toBe(1);
    }, 90_000);
  }

  it('answers 503 JSON when a scaled service cannot start, scales it back to 0, and the others keep working', async () => {
    await asleep('sleepy');
    // Its next task's model is corrupt: the task exits at start.
    const context = join(root, 'broken-sleepy');
    mkdirSync(context);
    writeFileSync(join(context, 'model.onnx'), 'not a model any more');
    writeFileSync(join(context, 'Dockerfile'), `FROM ${functionImage('sleepy', tag)}\nCOPY model.onnx /app/function/model.onnx\n`);
    await run('docker', ['build', '--quiet', '-t', brokenSleepy, context]);
    docker(['service', 'update', '--detach', '--no-resolve-image', '--image', brokenSleepy, serviceOf(stack, 'sleepy')]);
    const started = performance.now();
    const res = await fetch(`${url}/sleepy/predict`, postJson(IRIS));
    const ms = performance.now() - started;
    const err = await errorOf(res);
    expect(err.status).toBe(503);
    // The cause (the container's last log line) goes to the activator's log, not to the client.
    expect(err.error).toBe("function 'sleepy' failed to start; retry later");
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(ms).toBeLessThan(20_000);
    log(`[figures] a scaled service that cannot start: 503 JSON after ${Math.round(ms)} ms`);
    expect((await fetch(`${url}/iris/predict`, postJson(IRIS))).status).toBe(200);
    expect((await fetch(`${url}/digits/predict`, postJson(DIGITS))).status).toBe(200);
    // Left at 0 replicas, not crash-looping.
    await asleep('sleepy');
    expect(docker(['inspect', '--format', '{{.State.Status}} {{.State.StartedAt}}', decoy]).trim()).toBe('created 0001-01-01T00:00:00Z');
  }, 120_000);

  it('scales a function up (every replica gets traffic) and down under load without a failed request', async () => {
    const service = serviceOf(stack, 'digits');
    docker(['service', 'scale', '--detach', `${service}=3`]);
    await waitFor('3 digits replicas', async () => containers(service).length === 3 || `${containers(service).length} running`, 90_000);
    await waitForStack(stack, ['digits']);
    // The gateway re-resolves the replicas every second: once all three answer, it spreads evenly.
    const gateway = containers(serviceOf(stack, 'gateway'))[0];
    await untilEveryReplicaAnswers(gateway, 3, /^scale-warm-\d+$/, async (i) => {
      expect((await fetch(`${url}/digits/predict`, postJson(DIGITS, { 'X-Request-Id': `scale-warm-${i}` }))).status).toBe(200);
    });
    for (let i = 0; i < 90; i++) expect((await fetch(`${url}/digits/predict`, postJson(DIGITS, { 'X-Request-Id': `scale-${i}` }))).status).toBe(200);
    const perReplica = await answersPerReplica(gateway, /^scale-\d+$/, 90);
    expect(perReplica.size).toBe(3);
    // Round robin over three: 30 each, give or take a re-resolution's reordering.
    for (const [replica, n] of perReplica) expect(n, `replica ${replica}`).toBeGreaterThanOrEqual(10);
    const statuses = await underLoad(`${url}/digits/predict`, DIGITS, async () => {
      docker(['service', 'scale', '--detach', `${service}=1`]);
      await waitFor('1 digits replica', async () => containers(service).length === 1 || `${containers(service).length} running`, 90_000);
    });
    log(`scale 3 -> 1 under load: ${statuses.length} requests, ${failed(statuses).length} failed`);
    expect(failed(statuses)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(100);
    expect(inspect(service).Spec.Mode.Replicated.Replicas).toBe(1);
  }, 240_000);

  it('rolls a single-replica function over to a new task under load without a failed request', async () => {
    const service = serviceOf(stack, 'iris');
    const before = containers(service);
    const started = performance.now();
    const statuses = await underLoad(`${url}/iris/predict`, IRIS, async () => {
      docker(['service', 'update', '--detach', '--force', '--no-resolve-image', service]);
      expect(await updateOutcome(service)).toBe('completed');
    });
    log(`rolling update of iris under load: ${statuses.length} requests in ${Math.round(performance.now() - started)} ms, ${failed(statuses).length} failed`);
    expect(failed(statuses)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(100);
    const after = containers(service);
    expect(after).toHaveLength(1);
    expect(after).not.toEqual(before);
  }, 240_000);

  it('rolls an update whose replicas fail back by itself, still answering every request', async () => {
    // The next version's model is corrupt: its replicas exit at start and never turn healthy.
    const context = join(root, 'broken');
    mkdirSync(context);
    writeFileSync(join(context, 'model.onnx'), 'not a model any more');
    writeFileSync(join(context, 'Dockerfile'), `FROM ${functionImage('digits', tag)}\nCOPY model.onnx /app/function/model.onnx\n`);
    await run('docker', ['build', '--quiet', '-t', broken, context]);
    const service = serviceOf(stack, 'digits');
    const statuses = await underLoad(`${url}/digits/predict`, DIGITS, async () => {
      docker(['service', 'update', '--detach', '--no-resolve-image', '--image', broken, service]);
      expect(await updateOutcome(service)).toBe('rollback_completed');
    });
    log(`failed update of digits rolled back under load: ${statuses.length} requests, ${failed(statuses).length} failed`);
    expect(failed(statuses)).toEqual([]);
    expect(inspect(service).Spec.TaskTemplate.ContainerSpec.Image).toBe(functionImage('digits', tag));
    expect((await fetch(`${url}/digits/predict`, postJson(DIGITS))).status).toBe(200);
  }, 240_000);

  /** modelfn in the stack's folder, told the stack (and a compose project that does not run). */
  const cli = (args: string[]) => new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const env = { ...process.env, ...stack.env, MODELFN_STACK: stack.name, MODELFN_PROJECT: `absent-${process.pid}` };
    execFile(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), ...args], { cwd: root, env, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
  const versionOf = async (res: Response) => {
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    return res.headers.get('x-modelfn-version');
  };
  const gatewayTask = () => containers(serviceOf(stack, 'gateway'));
  let gatewayVolumes: string[] = [];

  it('moves a split from 80/20 to 0/100 under load with modelfn traffic, failing no request, shows it, and keeps it through deploy', async () => {
    const seen = new Set<string | null>();
    for (let i = 0; i < 60; i++) seen.add(await versionOf(await fetch(`${url}/v2/models/flowers/infer`, postJson(FLOWER))));
    expect(seen).toEqual(new Set(['1', '2']));
    const [gateway] = gatewayTask();
    let moved = { code: -1, stdout: '', stderr: '' };
    const statuses = await underLoad(`${url}/v2/models/flowers/infer`, FLOWER, async () => {
      moved = await cli(['traffic', 'flowers', '1=0', '2=100']);
    });
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toMatch(new RegExp(`^flowers: traffic 1=0 2=100 in force on 1 gateway of the stack ${stack.name} \\((\\d+) ms\\)`));
    log(`modelfn traffic on Swarm: ${moved.stdout.trim().split('\n')[0]}; ${statuses.length} requests through the change`);
    expect(failed(statuses)).toEqual([]);
    expect(statuses.length).toBeGreaterThan(100);
    for (let i = 0; i < 60; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/infer`, postJson(FLOWER)))).toBe('2');
    expect(await versionOf(await fetch(`${url}/v2/models/flowers/versions/1/infer`, postJson(FLOWER)))).toBe('1');
    // Reloaded in place: the same task, its config in its own volume.
    expect(gatewayTask()).toEqual([gateway]);
    gatewayVolumes = docker(['inspect', gateway, '--format', `{{range .Mounts}}{{if eq .Destination "${GATEWAY_LIVE.dir}"}}{{.Name}}{{end}}{{end}}`]).trim().split('\n').filter(Boolean);
    expect(gatewayVolumes).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(root, 'dist/traffic/swarm', `${stack.name}.json`), 'utf8'))).toEqual({ flowers: { declared: { 1: 80, 2: 20 }, traffic: { 1: 0, 2: 100 } } });

    // Shown, with the figures of the versions' tasks (the stack found without --swarm).
    const shown = await cli(['traffic', 'flowers', '--window', '1']);
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trim().split('\n');
    expect(lines[0]).toBe(`flowers on the stack ${stack.name}: traffic 1=0 2=100 (over the last 1 s)`);
    expect(lines.find((l) => l.startsWith('2 '))!.split(/\s{2,}/).slice(0, 2)).toEqual(['2', '100%']);

    // A later deploy keeps it: the gateway's image is built with it, and the unchanged declaration rolls nothing.
    const rebuilt: string[] = [];
    expect(await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: false, check: false, log: (l) => rebuilt.push(l), trafficStack: stack.name })).toBe(0);
    expect(rebuilt).toContain(`  ✓ traffic: flowers keeps the split set by modelfn traffic (stack ${stack.name}): 1=0 2=100`);
    expect(splitInForce(readFileSync(join(root, 'dist/_gateway/swarm.conf'), 'utf8'), 'flowers')).toEqual([{ version: '1', percent: 0 }, { version: '2', percent: 100 }]);
    await deployStack(stack);
    await new Promise((r) => setTimeout(r, 2000));
    expect(gatewayTask()).toEqual([gateway]);
    for (let i = 0; i < 30; i++) expect(await versionOf(await fetch(`${url}/v2/models/flowers/infer`, postJson(FLOWER)))).toBe('2');
  }, 180_000);

  it('is removed leaving no service, container, network, config or gateway volume behind', async () => {
    await removeStack(stack);
    removed = true;
    expect(await stackLeftovers(stack)).toEqual([]);
    await waitFor('the gateway\'s volume to be gone', async () => {
      const left = gatewayVolumes.filter((name) => docker(['volume', 'ls', '-q']).split('\n').includes(name));
      return left.length === 0 || left.join(', ');
    }, 30_000);
  }, 150_000);
});
