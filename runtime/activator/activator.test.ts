/**
 * The activator against an engine faked in process: its "containers" are real function servers
 * (iris) started and stopped in this process, with their real control servers, so everything
 * but the engine is real. The fake engine is careless on purpose: it ignores the project filter,
 * so the tests also show the activator never touches another project's container.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterEach, describe, expect, it } from 'vitest';
import { controlApp } from '../serve/control.ts';
import { loadFunctionDir } from '../function/discover.ts';
import { startFunction, type RunningFunction } from '../serve/server.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../testing/index.ts';
import { Activator, type ScaledSpec } from './activator.ts';
import { activatorApp } from './app.ts';
import { DockerError, type ContainerDetails, type ContainerSummary, type DockerClient, type ServiceDetails, type TaskSummary } from './docker.ts';
import { createActivatorMetrics } from './metrics.ts';
import { NUMBER_LABEL, OutOfScopeError, PROJECT_LABEL, ProjectScope, SERVICE_LABEL, type Replica, type Scope } from './scope.ts';
import { STACK_LABEL, SWARM_SERVICE_LABEL, StackScope } from './stack-scope.ts';

interface FakeContainer {
  id: string;
  /** Swarm: the task's slot. */
  slot?: number;
  /** Swarm: its health check has not passed yet (the task is `starting`). */
  settling?: boolean;
  labels: Record<string, string>;
  state: 'created' | 'running' | 'paused' | 'exited';
  broken?: boolean;
  running?: { fn: RunningFunction; control: Server; url: string; controlUrl: string };
}

interface FakeService {
  id: string;
  name: string;
  version: number;
  replicas: number;
  labels: Record<string, string>;
  slots: number;
  broken?: boolean;
}

/**
 * An engine holding function "containers" that are in-process servers; on Swarm, services whose
 * replica count makes and stops their tasks' containers (scaling down, it stops the
 * lowest-numbered task: Swarm, not the caller, picks which).
 */
class FakeEngine implements DockerClient {
  containers = new Map<string, FakeContainer>();
  services = new Map<string, FakeService>();
  calls: string[] = [];
  private config = testConfig({ PORT: '0' });

  add(id: string, project: string, service: string, options: { state?: FakeContainer['state']; broken?: boolean } = {}): FakeContainer {
    const c: FakeContainer = { id, labels: { [PROJECT_LABEL]: project, [SERVICE_LABEL]: service, [NUMBER_LABEL]: '1' }, state: options.state ?? 'exited', broken: options.broken };
    this.containers.set(id, c);
    return c;
  }

  private get(id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw new DockerError(404, `No such container: ${id}`);
    return c;
  }

  async list(filters: Record<string, string[]>): Promise<ContainerSummary[]> {
    this.calls.push(`list ${JSON.stringify(filters)}`);
    // Careless: only the service filter is applied, never the project (or stack) one.
    const [key, service] = filters.label.find((l) => l.startsWith(`${SERVICE_LABEL}=`) || l.startsWith(`${SWARM_SERVICE_LABEL}=`))!.split('=');
    return [...this.containers.values()].filter((c) => c.labels[key] === service).map((c) => ({
      Id: c.id, Names: [`/${c.id}`], Labels: c.labels, State: c.state, Status: c.state,
      NetworkSettings: { Networks: { functions: { IPAddress: c.state === 'exited' ? '' : '127.0.0.1' } } },
    }));
  }

  async inspect(id: string): Promise<ContainerDetails> {
    const c = this.get(id);
    return {
      Id: c.id, Name: `/${c.id}`, Config: { Labels: c.labels }, HostConfig: {},
      State: { Status: c.state, Running: c.state === 'running', Paused: c.state === 'paused', Restarting: false, ExitCode: c.broken ? 1 : 0, Error: '', StartedAt: '' },
      NetworkSettings: { Networks: { functions: { IPAddress: c.state === 'exited' ? '' : '127.0.0.1' } } },
    };
  }

  async start(id: string): Promise<void> {
    this.calls.push(`start ${id}`);
    const c = this.get(id);
    if (c.state === 'running') return;
    if (c.broken) {
      c.state = 'exited';
      return;
    }
    const fn = await startFunction(await loadFunctionDir(resolve(ROOT, 'functions/iris'), this.config), this.config, memoryLogger());
    const control = await new Promise<Server>((done) => {
      const s = serve({ fetch: controlApp(fn, { drainTimeoutMs: 5000 }).fetch, port: 0, hostname: '127.0.0.1' }, () => done(s as Server)) as Server;
    });
    c.running = { fn, control, url: fn.url, controlUrl: `http://127.0.0.1:${(control.address() as AddressInfo).port}` };
    c.state = 'running';
  }

  async stop(id: string): Promise<void> {
    this.calls.push(`stop ${id}`);
    const c = this.get(id);
    if (c.running) {
      await c.running.fn.shutdown();
      await new Promise((done) => c.running!.control.close(done));
      c.running = undefined;
    }
    c.state = 'exited';
  }

  async pause(id: string): Promise<void> {
    this.calls.push(`pause ${id}`);
    this.get(id).state = 'paused';
  }

  async unpause(id: string): Promise<void> {
    this.calls.push(`unpause ${id}`);
    this.get(id).state = 'running';
  }

  async create(): Promise<string> {
    throw new Error('not used here');
  }

  async remove(id: string): Promise<void> {
    this.calls.push(`remove ${id}`);
    this.containers.delete(id);
  }

  async logs(id: string): Promise<string> {
    return this.get(id).broken ? 'modelfn: dist/iris/model.onnx: not a valid ONNX model (onnxruntime: protobuf parsing failed)\n' : '';
  }

  addService(stack: string, service: string, replicas: number, options: { broken?: boolean; labels?: Record<string, string> } = {}): Promise<void> {
    const name = `${stack}_${service}`;
    this.services.set(name, { id: `svc-${name}`, name, version: 1, replicas, labels: options.labels ?? { [STACK_LABEL]: stack }, slots: 0, broken: options.broken });
    return this.reconcile(name);
  }

  private taskContainers(name: string): FakeContainer[] {
    return [...this.containers.values()].filter((c) => c.labels[SWARM_SERVICE_LABEL] === name && (c.state === 'running' || c.state === 'paused'));
  }

  private async reconcile(name: string): Promise<void> {
    const s = this.services.get(name)!;
    while (this.taskContainers(name).length < s.replicas) {
      const slot = ++s.slots;
      const id = `${name}.${slot}`;
      this.containers.set(id, { id, slot, labels: { [STACK_LABEL]: s.labels[STACK_LABEL] ?? '', [SWARM_SERVICE_LABEL]: name }, state: 'created', broken: s.broken });
      await this.start(id);
      if (s.broken) break;
    }
    for (const c of this.taskContainers(name).slice(0, Math.max(0, this.taskContainers(name).length - s.replicas))) {
      await this.stop(c.id);
      this.containers.delete(c.id);
    }
  }

  async service(name: string): Promise<ServiceDetails> {
    const s = this.services.get(name);
    if (!s) throw new DockerError(404, `service ${name} not found`);
    return { ID: s.id, Version: { Index: s.version }, Spec: { Name: s.name, Labels: s.labels, Mode: { Replicated: { Replicas: s.replicas } }, TaskTemplate: {} } };
  }

  async updateService(id: string, version: number, spec: { Mode: { Replicated: { Replicas: number } } }): Promise<void> {
    const s = [...this.services.values()].find((x) => x.id === id)!;
    if (version !== s.version) throw new DockerError(500, 'rpc error: update out of sequence');
    this.calls.push(`scale ${s.name} ${spec.Mode.Replicated.Replicas}`);
    s.version++;
    s.replicas = spec.Mode.Replicated.Replicas;
    await this.reconcile(s.name);
  }

  /** A task per container of the service: running (paused ones too), or failed when it exited. */
  async tasks(filters: Record<string, string[]>): Promise<TaskSummary[]> {
    const s = [...this.services.values()].find((x) => x.id === filters.service[0] || x.name === filters.service[0]);
    if (!s) return [];
    return [...this.containers.values()].filter((c) => c.labels[SWARM_SERVICE_LABEL] === s.name && c.slot !== undefined).map((c) => ({
      ID: `task-${c.id}`, ServiceID: s.id, Slot: c.slot, DesiredState: c.state === 'exited' ? 'shutdown' : 'running',
      Status: { State: c.state === 'exited' ? 'failed' : c.settling ? 'starting' : 'running', Err: c.state === 'exited' ? 'task: non-zero exit (1)' : undefined, ContainerStatus: { ContainerID: c.id, ExitCode: c.state === 'exited' ? 1 : 0 } },
      NetworksAttachments: [{ Network: { Spec: { Name: 'mine_functions' } }, Addresses: ['127.0.0.1/8'] }],
    }));
  }

  async close(): Promise<void> {
    for (const c of this.containers.values()) if (c.running) await this.stop(c.id);
  }
}

const spec = (name: string, wake: ScaledSpec['wake'] = 'start'): ScaledSpec => ({
  name, prefix: `/${name}`, min: 0, max: 1, idleSeconds: 1, wake, concurrency: 8, timeoutMs: 5000, bodySize: 1024 * 1024,
});

interface SetUpOptions {
  stopDelayMs?: number;
  swarm?: boolean;
  budgetBytes?: number;
  tickMs?: number;
  /** Where a replica answers, when not at its fake container's servers. */
  endpointOf?: (replica: Replica, port: number) => string | undefined;
}

/** The activator served on a loopback port, as the gateway reaches it. */
async function setUp(functions: ScaledSpec[], engine = new FakeEngine(), options: SetUpOptions = {}) {
  const metrics = createActivatorMetrics();
  const logger = memoryLogger();
  const names = new Set(functions.map((f) => f.name));
  const scope: Scope = options.swarm ? new StackScope(engine, 'mine', names) : new ProjectScope(engine, 'mine', names);
  const activator = new Activator({
    scope, functions, metrics, logger, functionPort: 8080, controlPort: 9090,
    wakeTimeoutMs: 10_000, failureCooldownMs: 3000, stopDelayMs: options.stopDelayMs ?? 300, tickMs: options.tickMs ?? 100_000, scaleUpTicks: 3, scaleDownTicks: 5,
    budgetBytes: options.budgetBytes ?? 64 * 1024 * 1024,
    endpointOf: (replica, port) => {
      const found = options.endpointOf?.(replica, port);
      if (found) return found;
      const running = engine.containers.get(replica.id)?.running;
      return running && (port === 8080 ? running.url : running.controlUrl);
    },
  });
  const app = activatorApp(activator, { metrics, logger });
  const server = await new Promise<Server>((done) => {
    const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => done(s as Server)) as Server;
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  /** A request as the gateway passes it on: the function named in its header, the path as the function sees it. */
  const send = (fn: string, path: string, init?: RequestInit) =>
    fetch(`${url}${path}`, { ...init, headers: { 'X-Modelfn-Function': fn, ...(init?.headers as Record<string, string> | undefined) } });
  const close = async () => {
    activator.stop();
    server.closeAllConnections();
    await new Promise((done) => server.close(done));
  };
  return { engine, scope, activator, app, metrics, logger, send, url, close };
}

const body = { instances: [[5.1, 3.5, 1.4, 0.2]] };

describe('the activator', () => {
  const engines: FakeEngine[] = [];
  const closing: (() => Promise<void>)[] = [];
  const make = async (functions: ScaledSpec[], options: SetUpOptions = {}) => {
    const made = await setUp(functions, undefined, options);
    engines.push(made.engine);
    closing.push(made.close);
    return made;
  };
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
    for (const e of engines.splice(0)) await e.close();
  });

  it('wakes a stopped function once for 16 concurrent requests, holding and answering every one', async () => {
    const { engine, send, metrics } = await make([spec('iris')]);
    engine.add('iris-1', 'mine', 'iris');
    const answers = await Promise.all(Array.from({ length: 16 }, () => send('iris', '/predict', postJson(body))));
    expect(answers.map((a) => a.status)).toEqual(new Array(16).fill(200));
    expect((await answers[0].json() as { predictions: { label: number }[] }).predictions[0].label).toBe(0);
    expect(engine.calls.filter((c) => c.startsWith('start'))).toEqual(['start iris-1']);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/modelfn_activator_wakes_total\{function="iris",mode="start",result="ok"\} 1/);
    for (const phase of ['container_start', 'process_start', 'model_load', 'warm_up', 'ready', 'first_answer']) {
      expect(text).toMatch(new RegExp(`modelfn_activator_wake_seconds_count\\{function="iris",mode="start",phase="${phase}"\\} 1`));
    }
  });

  it('answers the gateway page\'s /stats of a sleeping function itself, without waking it', async () => {
    const { engine, send } = await make([spec('iris')]);
    engine.add('iris-1', 'mine', 'iris');
    const res = await send('iris', '/stats');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'iris', state: 'asleep', replicas: 0, readyReplicas: 0, requestsPerSecond: 0 });
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual([]);
    expect(engine.containers.get('iris-1')!.state).toBe('exited');
    // Anything else wakes it; awake, its own /stats answers.
    expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
    const awake = await send('iris', '/stats');
    expect(await awake.json()).toMatchObject({ name: 'iris', state: 'ready', replicas: 1, readyReplicas: 1 });
  });

  it('passes bodies, query strings and the protocol paths through, and refuses a body above the limit', async () => {
    const { engine, send } = await make([{ ...spec('iris'), bodySize: 100 }]);
    engine.add('iris-1', 'mine', 'iris');
    const infer = await send('iris', '/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }));
    expect(infer.status).toBe(200);
    expect((await infer.json() as { model_name: string }).model_name).toBe('iris');
    const tooBig = await send('iris', '/predict', postJson({ instances: [new Array(50).fill(1.5)] }));
    expect(tooBig.status).toBe(413);
    expect(await tooBig.json()).toEqual({ error: "request body is larger than the limit of 100 bytes for 'iris'" });
  });

  it('puts an idle function to sleep (stopped or frozen) and wakes it again', async () => {
    for (const wake of ['start', 'unpause'] as const) {
      const { engine, send, activator } = await make([spec('iris', wake)]);
      engine.add('iris-1', 'mine', 'iris');
      expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
      await activator.tick();
      expect(engine.containers.get('iris-1')!.state).toBe('running'); // used within idleSeconds
      await new Promise((r) => setTimeout(r, 1100));
      await activator.tick();
      expect(engine.containers.get('iris-1')!.state).toBe(wake === 'start' ? 'exited' : 'paused');
      const again = await send('iris', '/predict', postJson(body));
      expect(again.status).toBe(200);
      expect(engine.calls).toContain(wake === 'start' ? 'stop iris-1' : 'pause iris-1');
      if (wake === 'unpause') expect(engine.calls).toContain('unpause iris-1');
    }
  });

  it('keeps a replica about to be stopped when a request needs it meanwhile (its port reopened, no restart)', async () => {
    const { engine, send, activator } = await make([spec('iris')], { stopDelayMs: 5000 });
    engine.add('iris-1', 'mine', 'iris');
    expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const going = activator.tick();
    // The port is closed by now; the container would stop 5 s later.
    await new Promise((r) => setTimeout(r, 300));
    const res = await send('iris', '/predict', postJson(body));
    expect(res.status).toBe(200);
    await going;
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual(['start iris-1']);
    expect(engine.containers.get('iris-1')!.state).toBe('running');
  });

  it('answers 503 JSON with Retry-After when a function cannot wake, at once while it cools down; the cause goes to its log only', async () => {
    const { engine, send, logger } = await make([spec('broken'), spec('iris')]);
    engine.add('broken-1', 'mine', 'broken', { broken: true });
    engine.add('iris-1', 'mine', 'iris');
    const started = performance.now();
    const res = await send('broken', '/predict', postJson(body, { 'X-Request-Id': 'the-first-one' }));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(res.headers.get('x-request-id')).toBe('the-first-one');
    // The container's last log line, its name and the model's path stay out of the answer...
    expect(await res.json()).toEqual({ error: "function 'broken' failed to start; retry later" });
    // ...and are in the activator's log, with the request's id.
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'unavailable', fn: 'broken', request_id: 'the-first-one', error: expect.stringContaining('not a valid ONNX model') }));
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'wake failed', fn: 'broken', replica: 'broken-1', error: expect.stringContaining('dist/iris/model.onnx') }));
    const again = await send('broken', '/predict', postJson(body));
    expect(again.status).toBe(503);
    // Without an id from the gateway it makes one, and says it.
    const id = again.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'unavailable', request_id: id }));
    expect(engine.calls.filter((c) => c === 'start broken-1')).toHaveLength(1);
    expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
  });

  it('never acts on another project\'s container, even when the engine lists it', async () => {
    const { engine, send, scope } = await make([spec('iris')]);
    engine.add('theirs', 'other-project', 'iris');
    const res = await send('iris', '/predict', postJson(body));
    expect(res.status).toBe(503);
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual([]);
    expect(engine.containers.get('theirs')!.state).toBe('exited');
    await expect(scope.start({ id: 'theirs', name: 'theirs', service: 'iris', number: 1, state: 'exited', added: false })).rejects.toThrow(OutOfScopeError);
    await expect(scope.replicas('postgres')).rejects.toThrow("'postgres' is not a scaled service of project 'mine': refused");
    const unknown = await send('postgres', '/anything');
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ error: "unknown function 'postgres': it does not scale here" });
    expect(engine.calls.every((c) => !c.includes('theirs'))).toBe(true);
  });

  it('answers the gateway only', async () => {
    const { activator, metrics } = await make([spec('iris')]);
    const app = activatorApp(activator, { metrics, logger: memoryLogger(), allow: async (address) => address === '172.18.0.5' });
    const from = (remoteAddress: string) => app.request('/predict', postJson(body, { 'X-Modelfn-Function': 'iris' }), { incoming: { socket: { remoteAddress } } });
    const denied = await from('172.18.0.9');
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({ error: 'the activator answers the gateway only' });
    expect((await app.request('/v2/health/ready', {}, { incoming: { socket: { remoteAddress: '127.0.0.1' } } })).status).toBe(200);
  });
  it('takes the function from the gateway\'s header alone, never from the path (dot-segments, backslashes, encoded slashes)', async () => {
    const { engine, send, url } = await make([spec('iris'), spec('vad')]);
    engine.add('iris-1', 'mine', 'iris');
    engine.add('vad-1', 'mine', 'vad');
    for (const path of ['/../vad/predict', '/..\\..\\vad/predict', '/%2e%2e/vad/predict', '/..%2fvad%2fpredict', '/_activate/vad/vad/predict']) {
      const res = await send('iris', path, postJson(body));
      // iris's own answer (a 404 of its router, or its 200): it was iris that was reached.
      expect([200, 404], path).toContain(res.status);
      await res.arrayBuffer();
    }
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual(['start iris-1']);
    expect(engine.containers.get('vad-1')!.state).toBe('exited');
    // Without the header a request is the activator's own: nothing is woken for it.
    const own = await fetch(`${url}/vad/predict`, postJson(body));
    expect(own.status).toBe(404);
    expect(engine.containers.get('vad-1')!.state).toBe('exited');
  });

  it('counts the bytes it holds per function and in all, and answers 503 JSON with Retry-After beyond them', async () => {
    const MiB = 1024 * 1024;
    const { engine, send, activator } = await make([spec('iris'), spec('iris2'), spec('iris3')], { budgetBytes: 2 * MiB });
    for (const name of ['iris', 'iris2', 'iris3']) engine.add(`${name}-1`, 'mine', name);
    // Valid JSON of 700 KB: each fits the 1 MiB body limit, two of them not one function's share.
    const padded = JSON.stringify(body) + ' '.repeat(700_000);
    const twice = await Promise.all([send('iris', '/predict', postJson(padded)), send('iris', '/predict', postJson(padded))]);
    expect(twice.map((r) => r.status).sort()).toEqual([200, 503]);
    const refused = twice.find((r) => r.status === 503)!;
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toEqual({ error: "function 'iris' has as many requests waiting as it may; retry later" });
    expect(activator.heldBytes()).toBe(0);
    // Three functions at once: the third is over the total (2 MiB), whichever it is.
    const three = await Promise.all(['iris', 'iris2', 'iris3'].map((name) => send(name, '/predict', postJson(padded))));
    expect(three.map((r) => r.status).sort()).toEqual([200, 200, 503]);
    // Every byte is given back once the requests are answered.
    expect(activator.heldBytes()).toBe(0);
    expect(activator.heldBytes('iris')).toBe(0);
    // Small requests count at least 256 KiB each: the budget bounds how many are held, too.
    const many = await Promise.all(Array.from({ length: 12 }, () => send('iris2', '/predict', postJson(body))));
    expect(many.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    expect(many.every((r) => r.status === 200 || r.status === 503)).toBe(true);
  });

  it('puts one function to sleep on time while another is still draining', async () => {
    // slow's control server takes 4 s to answer its sleep (a request draining); fast goes idle meanwhile.
    const pending: string[] = [];
    const control = await new Promise<Server>((done) => {
      const app = new Hono();
      app.get('/state', (c) => c.json({ ready: true, listening: true, in_flight: 0, requests: 1, idle_ms: 60_000, startup: { process_ms: 0, model_load_ms: 0, warm_up_ms: 0 }, wakes: 0 }));
      app.post('/sleep', async (c) => {
        pending.push('sleep');
        await new Promise((r) => setTimeout(r, 4000));
        pending.pop();
        return c.json({ error: 'busy' }, 409);
      });
      const s = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, () => done(s as Server)) as Server;
    });
    try {
      const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}`;
      const { engine, send, activator, logger } = await make([{ ...spec('slow'), timeoutMs: 30_000 }, spec('fast')], {
        tickMs: 100,
        endpointOf: (replica) => (replica.id === 'slow-1' ? controlUrl : undefined),
      });
      engine.add('slow-1', 'mine', 'slow', { state: 'running' });
      engine.add('fast-1', 'mine', 'fast');
      expect((await send('fast', '/predict', postJson(body))).status).toBe(200);
      const used = performance.now();
      activator.start();
      while (!pending.length && performance.now() - used < 1000) await new Promise((r) => setTimeout(r, 10));
      expect(pending, JSON.stringify(logger.lines)).toEqual(['sleep']);
      // fast's idle time (1 s) ends while slow still drains: asleep within a tick or two of it.
      while (engine.containers.get('fast-1')!.state !== 'exited' && performance.now() - used < 3500) await new Promise((r) => setTimeout(r, 20));
      const asleepAfter = performance.now() - used;
      expect(engine.containers.get('fast-1')!.state).toBe('exited');
      expect(pending).toEqual(['sleep']);
      // idleSeconds, a tick, the port closing and the 300 ms stop delay (about 1.45 s; slow's drain is 30 s).
      expect(asleepAfter).toBeLessThan(3000);
    } finally {
      control.closeAllConnections();
      await new Promise((done) => control.close(done));
    }
  });
});

describe('the activator on Docker Swarm', () => {
  const engines: FakeEngine[] = [];
  const closing: (() => Promise<void>)[] = [];
  const make = async (functions: ScaledSpec[]) => {
    const made = await setUp(functions, undefined, { swarm: true });
    engines.push(made.engine);
    closing.push(made.close);
    return made;
  };
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
    for (const e of engines.splice(0)) await e.close();
  });
  const running = (engine: FakeEngine, name: string) => [...engine.containers.values()].filter((c) => c.labels[SWARM_SERVICE_LABEL] === name && c.state !== 'exited');

  it('scales an idle service to 0 and back to 1 for 16 concurrent requests, every one answered', async () => {
    const { engine, send, activator, metrics } = await make([spec('iris')]);
    await engine.addService('mine', 'iris', 1);
    await activator.tick();
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(engine.services.get('mine_iris')!.replicas).toBe(0);
    expect(running(engine, 'mine_iris')).toEqual([]);
    const answers = await Promise.all(Array.from({ length: 16 }, () => send('iris', '/predict', postJson(body))));
    expect(answers.map((a) => a.status)).toEqual(new Array(16).fill(200));
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual(['scale mine_iris 0', 'scale mine_iris 1']);
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['running']);
    expect(await metrics.registry.metrics()).toMatch(/modelfn_activator_wakes_total\{function="iris",mode="start",result="ok"\} 1/);
  });

  it('freezes an idle task in place (the service keeps its replica) and thaws it for the next request', async () => {
    const { engine, send, activator } = await make([spec('iris', 'unpause')]);
    await engine.addService('mine', 'iris', 1);
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['paused']);
    expect(engine.services.get('mine_iris')!.replicas).toBe(1);
    expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['running']);
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual([]);
  });

  it('freezes a task only once its health check has passed (a task frozen while starting would stay starting)', async () => {
    const { engine, send, activator } = await make([spec('iris', 'unpause')]);
    await engine.addService('mine', 'iris', 1);
    const task = running(engine, 'mine_iris')[0];
    task.settling = true;
    // It answers while starting.
    expect((await send('iris', '/predict', postJson(body))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(task.state).toBe('running');
    task.settling = false;
    await activator.tick();
    expect(task.state).toBe('paused');
  });

  it('opens a replica again when Swarm stopped another task in place of the one put to sleep', async () => {
    const { engine, send, activator } = await make([{ ...spec('iris'), min: 1, max: 2 }]);
    await engine.addService('mine', 'iris', 2);
    await new Promise((r) => setTimeout(r, 1100));
    // Scaling in: the activator closes the highest task's port; the fake Swarm stops the lowest.
    await activator.tick();
    expect(engine.services.get('mine_iris')!.replicas).toBe(1);
    expect(running(engine, 'mine_iris').map((c) => c.id)).toEqual(['mine_iris.2']);
    const listening = async () => ((await (await fetch(`${engine.containers.get('mine_iris.2')!.running!.controlUrl}/state`)).json()) as { listening: boolean }).listening;
    expect(await listening()).toBe(false);
    await activator.tick();
    expect(await listening()).toBe(true);
    const res = await send('iris', '/predict', postJson(body));
    expect(res.status).toBe(200);
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual(['scale mine_iris 1']);
  });

  it('answers 503 JSON when a task cannot start (the cause in its log), and scales the service back to 0', async () => {
    const { engine, send, logger } = await make([spec('broken')]);
    await engine.addService('mine', 'broken', 0, { broken: true });
    const res = await send('broken', '/predict', postJson(body, { 'X-Request-Id': 'swarm-1' }));
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toEqual({ error: "function 'broken' failed to start; retry later" });
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'unavailable', request_id: 'swarm-1', error: expect.stringContaining('not a valid ONNX model') }));
    expect(engine.services.get('mine_broken')!.replicas).toBe(0);
  });

  it('never acts on another stack\'s service or container, even when the engine lists it', async () => {
    const { engine, send, scope, logger } = await make([spec('iris')]);
    // A container labelled with this stack's service name but another stack, and a service of
    // this name that another stack owns.
    engine.containers.set('theirs', { id: 'theirs', labels: { [STACK_LABEL]: 'other', [SWARM_SERVICE_LABEL]: 'mine_iris' }, state: 'paused' });
    await engine.addService('other', 'mine', 0, { labels: { [STACK_LABEL]: 'other' } });
    engine.services.set('mine_iris', { ...engine.services.get('other_mine')!, name: 'mine_iris' });
    const res = await send('iris', '/predict', postJson(body));
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: "function 'iris' could not be woken; retry later" });
    expect(logger.lines).toContainEqual(expect.objectContaining({ msg: 'unavailable', fn: 'iris', error: expect.stringContaining("is not a service of stack 'mine': refused") }));
    expect(engine.containers.get('theirs')!.state).toBe('paused');
    expect(engine.calls.filter((c) => c.startsWith('scale') || c.startsWith('unpause'))).toEqual([]);
    await expect(scope.replicas('postgres')).rejects.toThrow("'postgres' is not a scaled service of stack 'mine': refused");
    await expect(scope.unpause({ id: 'theirs', name: 'theirs', service: 'iris', number: 1, state: 'paused', added: false })).rejects.toThrow(OutOfScopeError);
  });
});
