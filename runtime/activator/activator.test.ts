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
import { afterEach, describe, expect, it } from 'vitest';
import { controlApp } from '../serve/control.ts';
import { loadFunctionDir } from '../function/discover.ts';
import { startFunction, type RunningFunction } from '../serve/server.ts';
import { ROOT, memoryLogger, postJson, testConfig } from '../testing/index.ts';
import { Activator, type ScaledSpec } from './activator.ts';
import { activatorApp } from './app.ts';
import { DockerError, type ContainerDetails, type ContainerSummary, type DockerClient, type ServiceDetails, type TaskSummary } from './docker.ts';
import { createActivatorMetrics } from './metrics.ts';
import { NUMBER_LABEL, OutOfScopeError, PROJECT_LABEL, ProjectScope, SERVICE_LABEL, type Scope } from './scope.ts';
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

function setUp(functions: ScaledSpec[], engine = new FakeEngine(), stopDelayMs = 300, swarm = false) {
  const metrics = createActivatorMetrics();
  const names = new Set(functions.map((f) => f.name));
  const scope: Scope = swarm ? new StackScope(engine, 'mine', names) : new ProjectScope(engine, 'mine', names);
  const activator = new Activator({
    scope, functions, metrics, logger: memoryLogger(), functionPort: 8080, controlPort: 9090,
    wakeTimeoutMs: 10_000, failureCooldownMs: 3000, stopDelayMs, tickMs: 100_000, scaleUpTicks: 3, scaleDownTicks: 5,
    endpointOf: (replica, port) => {
      const running = engine.containers.get(replica.id)?.running;
      return running && (port === 8080 ? running.url : running.controlUrl);
    },
  });
  const app = activatorApp(activator, { metrics });
  const send = (fn: string, path: string, init?: RequestInit, prefix = `/${fn}`) =>
    app.request(`/_activate/${fn}${path}`, { ...init, headers: { 'X-Forwarded-Prefix': prefix, ...(init?.headers as Record<string, string> | undefined) } });
  return { engine, scope, activator, app, metrics, send };
}

const body = { instances: [[5.1, 3.5, 1.4, 0.2]] };

describe('the activator', () => {
  const engines: FakeEngine[] = [];
  const make = (functions: ScaledSpec[], stopDelayMs?: number) => {
    const made = setUp(functions, undefined, stopDelayMs);
    engines.push(made.engine);
    return made;
  };
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
  });

  it('wakes a stopped function once for 16 concurrent requests, holding and answering every one', async () => {
    const { engine, send, metrics } = make([spec('iris')]);
    engine.add('iris-1', 'mine', 'iris');
    const answers = await Promise.all(Array.from({ length: 16 }, () => send('iris', '/iris/predict', postJson(body))));
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
    const { engine, send } = make([spec('iris')]);
    engine.add('iris-1', 'mine', 'iris');
    const res = await send('iris', '/iris/stats');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ name: 'iris', state: 'asleep', replicas: 0, readyReplicas: 0, requestsPerSecond: 0 });
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual([]);
    expect(engine.containers.get('iris-1')!.state).toBe('exited');
    // Anything else wakes it; awake, its own /stats answers.
    expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
    const awake = await send('iris', '/iris/stats');
    expect(await awake.json()).toMatchObject({ name: 'iris', state: 'ready', replicas: 1, readyReplicas: 1 });
  });

  it('passes bodies, query strings and the protocol paths through, and refuses a body above the limit', async () => {
    const { engine, send } = make([{ ...spec('iris'), bodySize: 100 }]);
    engine.add('iris-1', 'mine', 'iris');
    const infer = await send('iris', '/v2/models/iris/infer', postJson({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }), '');
    expect(infer.status).toBe(200);
    expect((await infer.json() as { model_name: string }).model_name).toBe('iris');
    const tooBig = await send('iris', '/iris/predict', postJson({ instances: [new Array(50).fill(1.5)] }));
    expect(tooBig.status).toBe(413);
    expect(await tooBig.json()).toEqual({ error: "request body is larger than the limit of 100 bytes for 'iris'" });
  });

  it('puts an idle function to sleep (stopped or frozen) and wakes it again', async () => {
    for (const wake of ['start', 'unpause'] as const) {
      const { engine, send, activator } = make([spec('iris', wake)]);
      engine.add('iris-1', 'mine', 'iris');
      expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
      await activator.tick();
      expect(engine.containers.get('iris-1')!.state).toBe('running'); // used within idleSeconds
      await new Promise((r) => setTimeout(r, 1100));
      await activator.tick();
      expect(engine.containers.get('iris-1')!.state).toBe(wake === 'start' ? 'exited' : 'paused');
      const again = await send('iris', '/iris/predict', postJson(body));
      expect(again.status).toBe(200);
      expect(engine.calls).toContain(wake === 'start' ? 'stop iris-1' : 'pause iris-1');
      if (wake === 'unpause') expect(engine.calls).toContain('unpause iris-1');
    }
  });

  it('keeps a replica about to be stopped when a request needs it meanwhile (its port reopened, no restart)', async () => {
    const { engine, send, activator } = make([spec('iris')], 5000);
    engine.add('iris-1', 'mine', 'iris');
    expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    const going = activator.tick();
    // The port is closed by now; the container would stop 5 s later.
    await new Promise((r) => setTimeout(r, 300));
    const res = await send('iris', '/iris/predict', postJson(body));
    expect(res.status).toBe(200);
    await going;
    expect(engine.calls.filter((c) => !c.startsWith('list'))).toEqual(['start iris-1']);
    expect(engine.containers.get('iris-1')!.state).toBe('running');
  });

  it('answers 503 JSON with Retry-After when a function cannot wake, at once while it cools down', async () => {
    const { engine, send } = make([spec('broken'), spec('iris')]);
    engine.add('broken-1', 'mine', 'broken', { broken: true });
    engine.add('iris-1', 'mine', 'iris');
    const started = performance.now();
    const res = await send('broken', '/broken/predict', postJson(body));
    expect(performance.now() - started).toBeLessThan(5000);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('3');
    expect(await res.json()).toEqual({ error: "function 'broken' failed to start: modelfn: dist/iris/model.onnx: not a valid ONNX model (onnxruntime: protobuf parsing failed)" });
    const again = await send('broken', '/broken/predict', postJson(body));
    expect(again.status).toBe(503);
    expect(engine.calls.filter((c) => c === 'start broken-1')).toHaveLength(1);
    expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
  });

  it('never acts on another project\'s container, even when the engine lists it', async () => {
    const { engine, send, scope } = make([spec('iris')]);
    engine.add('theirs', 'other-project', 'iris');
    const res = await send('iris', '/iris/predict', postJson(body));
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
    const { activator, metrics } = make([spec('iris')]);
    const app = activatorApp(activator, { metrics, allow: async (address) => address === '172.18.0.5' });
    const from = (remoteAddress: string) => app.request('/_activate/iris/iris/predict', postJson(body), { incoming: { socket: { remoteAddress } } });
    const denied = await from('172.18.0.9');
    expect(denied.status).toBe(403);
    expect(await denied.json()).toEqual({ error: 'the activator answers the gateway only' });
    expect((await app.request('/v2/health/ready', {}, { incoming: { socket: { remoteAddress: '127.0.0.1' } } })).status).toBe(200);
  });
});

describe('the activator on Docker Swarm', () => {
  const engines: FakeEngine[] = [];
  const make = (functions: ScaledSpec[]) => {
    const made = setUp(functions, undefined, 300, true);
    engines.push(made.engine);
    return made;
  };
  afterEach(async () => {
    for (const e of engines.splice(0)) await e.close();
  });
  const running = (engine: FakeEngine, name: string) => [...engine.containers.values()].filter((c) => c.labels[SWARM_SERVICE_LABEL] === name && c.state !== 'exited');

  it('scales an idle service to 0 and back to 1 for 16 concurrent requests, every one answered', async () => {
    const { engine, send, activator, metrics } = make([spec('iris')]);
    await engine.addService('mine', 'iris', 1);
    await activator.tick();
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(engine.services.get('mine_iris')!.replicas).toBe(0);
    expect(running(engine, 'mine_iris')).toEqual([]);
    const answers = await Promise.all(Array.from({ length: 16 }, () => send('iris', '/iris/predict', postJson(body))));
    expect(answers.map((a) => a.status)).toEqual(new Array(16).fill(200));
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual(['scale mine_iris 0', 'scale mine_iris 1']);
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['running']);
    expect(await metrics.registry.metrics()).toMatch(/modelfn_activator_wakes_total\{function="iris",mode="start",result="ok"\} 1/);
  });

  it('freezes an idle task in place (the service keeps its replica) and thaws it for the next request', async () => {
    const { engine, send, activator } = make([spec('iris', 'unpause')]);
    await engine.addService('mine', 'iris', 1);
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['paused']);
    expect(engine.services.get('mine_iris')!.replicas).toBe(1);
    expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
    expect(running(engine, 'mine_iris').map((c) => c.state)).toEqual(['running']);
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual([]);
  });

  it('freezes a task only once its health check has passed (a task frozen while starting would stay starting)', async () => {
    const { engine, send, activator } = make([spec('iris', 'unpause')]);
    await engine.addService('mine', 'iris', 1);
    const task = running(engine, 'mine_iris')[0];
    task.settling = true;
    // It answers while starting.
    expect((await send('iris', '/iris/predict', postJson(body))).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1100));
    await activator.tick();
    expect(task.state).toBe('running');
    task.settling = false;
    await activator.tick();
    expect(task.state).toBe('paused');
  });

  it('opens a replica again when Swarm stopped another task in place of the one put to sleep', async () => {
    const { engine, send, activator } = make([{ ...spec('iris'), min: 1, max: 2 }]);
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
    const res = await send('iris', '/iris/predict', postJson(body));
    expect(res.status).toBe(200);
    expect(engine.calls.filter((c) => c.startsWith('scale'))).toEqual(['scale mine_iris 1']);
  });

  it('answers 503 JSON naming the cause when a task cannot start, and scales the service back to 0', async () => {
    const { engine, send } = make([spec('broken')]);
    await engine.addService('mine', 'broken', 0, { broken: true });
    const res = await send('broken', '/broken/predict', postJson(body));
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toEqual({ error: "function 'broken' failed to start: modelfn: dist/iris/model.onnx: not a valid ONNX model (onnxruntime: protobuf parsing failed)" });
    expect(engine.services.get('mine_broken')!.replicas).toBe(0);
  });

  it('never acts on another stack\'s service or container, even when the engine lists it', async () => {
    const { engine, send, scope } = make([spec('iris')]);
    // A container labelled with this stack's service name but another stack, and a service of
    // this name that another stack owns.
    engine.containers.set('theirs', { id: 'theirs', labels: { [STACK_LABEL]: 'other', [SWARM_SERVICE_LABEL]: 'mine_iris' }, state: 'paused' });
    await engine.addService('other', 'mine', 0, { labels: { [STACK_LABEL]: 'other' } });
    engine.services.set('mine_iris', { ...engine.services.get('other_mine')!, name: 'mine_iris' });
    const res = await send('iris', '/iris/predict', postJson(body));
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ error: expect.stringContaining("is not a service of stack 'mine': refused") });
    expect(engine.containers.get('theirs')!.state).toBe('paused');
    expect(engine.calls.filter((c) => c.startsWith('scale') || c.startsWith('unpause'))).toEqual([]);
    await expect(scope.replicas('postgres')).rejects.toThrow("'postgres' is not a scaled service of stack 'mine': refused");
    await expect(scope.unpause({ id: 'theirs', name: 'theirs', service: 'iris', number: 1, state: 'paused', added: false })).rejects.toThrow(OutOfScopeError);
  });
});
