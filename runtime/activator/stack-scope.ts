/**
 * The activator's door to the engine on Docker Swarm: one stack's services, found by the labels
 * `docker stack deploy` puts on them and on their tasks' containers. Swarm owns the tasks, so a
 * replica is added or taken away by changing the service's replica count (scale to 0 and back),
 * never by starting or stopping a task's container; a replica is frozen and thawed in place
 * (`docker pause` on its container, which Swarm leaves running). Every action re-checks the
 * stack's labels on the service or container acted on, as the compose scope does.
 *
 * Pause and unpause act on containers of the engine the activator talks to: on a swarm of
 * several nodes, `wake: 'unpause'` reaches the tasks of the activator's node only.
 */
import type { ContainerDetails, ContainerSummary, DockerClient, ServiceDetails } from './docker.ts';
import { DockerError } from './docker.ts';
import { OutOfScopeError, stateOf, type Replica, type ReplicaState, type Scope } from './scope.ts';

export const STACK_LABEL = 'com.docker.stack.namespace';
export const SWARM_SERVICE_LABEL = 'com.docker.swarm.service.name';
export const TASK_NAME_LABEL = 'com.docker.swarm.task.name';

const LIVE_STATES = new Set(['running', 'paused']);

export class StackScope implements Scope {
  /** The containers a pending replica must not be mistaken for (they were there before it). */
  private readonly pending = new Map<string, Set<string>>();
  private made = 0;

  constructor(private readonly docker: DockerClient, readonly project: string, readonly services: ReadonlySet<string>) {
    if (!project) throw new OutOfScopeError('no stack: the activator acts on one stack only');
  }

  /** The swarm service of a function: `<stack>_<function>`. */
  private fullName(service: string): string {
    if (!this.services.has(service)) throw new OutOfScopeError(`'${service}' is not a scaled service of stack '${this.project}': refused`);
    return `${this.project}_${service}`;
  }

  private check(labels: Record<string, string> | undefined, what: string): string {
    const full = labels?.[SWARM_SERVICE_LABEL] ?? '';
    const service = full.startsWith(`${this.project}_`) ? full.slice(this.project.length + 1) : '';
    if (labels?.[STACK_LABEL] !== this.project || !this.services.has(service)) {
      throw new OutOfScopeError(`${what} is not a container of a scaled service of stack '${this.project}': refused`);
    }
    return service;
  }

  private async service(service: string): Promise<ServiceDetails> {
    const full = this.fullName(service);
    const details = await this.docker.service(full);
    if (details.Spec.Name !== full || details.Spec.Labels?.[STACK_LABEL] !== this.project) {
      throw new OutOfScopeError(`service ${full} is not a service of stack '${this.project}': refused`);
    }
    return details;
  }

  private async containers(service: string, all: boolean): Promise<ContainerSummary[]> {
    const full = this.fullName(service);
    const found = await this.docker.list({ label: [`${STACK_LABEL}=${this.project}`, `${SWARM_SERVICE_LABEL}=${full}`] }, { all });
    // The engine filtered already; a container that slipped through anyway is left alone.
    return found.filter((c) => c.Labels?.[STACK_LABEL] === this.project && c.Labels?.[SWARM_SERVICE_LABEL] === full);
  }

  private pendingReplica(service: string): Replica {
    return { id: `pending:${service}`, name: `${this.project}_${service} (one more task)`, service, number: Number.MAX_SAFE_INTEGER, state: 'exited', added: false, pending: true };
  }

  /** The running and frozen tasks' containers, by slot, then one pending replica (the next task). */
  async replicas(service: string): Promise<Replica[]> {
    const live = (await this.containers(service, false)).filter((c) => LIVE_STATES.has(c.State));
    const replicas = live.map((c): Replica => {
      this.check(c.Labels, `container ${c.Id.slice(0, 12)}`);
      const ip = Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
      return {
        id: c.Id,
        name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
        service,
        number: Number((c.Labels[TASK_NAME_LABEL] ?? '').split('.')[1] ?? 0),
        state: c.State,
        ip: ip || undefined,
        added: false,
      };
    }).sort((a, b) => a.number - b.number);
    return [...replicas, this.pendingReplica(service)];
  }

  /** Looks the container up again and checks its labels before acting on it. */
  private async confirmed(replica: Pick<Replica, 'id'>): Promise<ContainerDetails> {
    const details = await this.docker.inspect(replica.id);
    this.check(details.Config?.Labels, `container ${replica.id.slice(0, 12)}`);
    return details;
  }

  private async live(service: string): Promise<number> {
    return (await this.containers(service, false)).filter((c) => LIVE_STATES.has(c.State)).length;
  }

  /** Sets the service's replica count (resolves to it); retried once when another update came in between. */
  private async scaleTo(service: string, count: (details: ServiceDetails, live: number) => number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const details = await this.service(service);
      const replicas = Math.max(0, count(details, await this.live(service)));
      if (details.Spec.Mode?.Replicated?.Replicas === replicas) return replicas;
      try {
        await this.docker.updateService(details.ID, details.Version.Index, { ...details.Spec, Mode: { Replicated: { Replicas: replicas } } });
        return replicas;
      } catch (err) {
        if (attempt > 0 || !(err instanceof DockerError) || !/out of sequence/i.test(err.message)) throw err;
      }
    }
  }

  /**
   * Scales the service up by one task (unless one is starting already) and answers a pending
   * replica that becomes the new task's container once the engine has made it.
   */
  async start(replica: Replica): Promise<Replica> {
    const before = new Set((await this.containers(replica.service, true)).map((c) => c.Id));
    await this.scaleTo(replica.service, (details, live) => Math.max(details.Spec.Mode?.Replicated?.Replicas ?? 0, live + 1));
    const id = `pending:${replica.service}:${++this.made}`;
    this.pending.set(id, before);
    return { ...this.pendingReplica(replica.service), id, state: 'created' };
  }

  /**
   * Scales the service down by one task (Swarm picks which; the activator has closed the port of
   * the one it wanted asleep) and waits until that task's container has stopped: Swarm stops it
   * seconds later (it takes it out of DNS first), and until then it must not be taken for a
   * replica that answers.
   */
  async stop(replica: Replica, seconds: number): Promise<void> {
    if (!replica.pending) await this.confirmed(replica);
    this.pending.delete(replica.id);
    const target = await this.scaleTo(replica.service, (details, live) => Math.min(details.Spec.Mode?.Replicated?.Replicas ?? 0, live) - 1);
    const deadline = performance.now() + (seconds + 30) * 1000;
    while (performance.now() < deadline && (await this.live(replica.service)) > target) await new Promise((r) => setTimeout(r, 100));
  }

  async pause(replica: Replica): Promise<void> {
    await this.docker.pause((await this.confirmed(replica)).Id);
  }

  async unpause(replica: Replica): Promise<void> {
    await this.docker.unpause((await this.confirmed(replica)).Id);
  }

  async remove(replica: Replica): Promise<void> {
    throw new OutOfScopeError(`container ${replica.id.slice(0, 12)} belongs to a swarm task: the activator scales its service instead of removing it`);
  }

  /**
   * A container's state; for a pending replica, its task's container once there (running first,
   * then starting, then one that already exited), else the reason the engine gives for a task
   * it could not place or start.
   */
  async state(replica: Replica): Promise<ReplicaState> {
    if (!replica.pending) return stateOf(await this.confirmed(replica));
    const known = this.pending.get(replica.id) ?? new Set<string>();
    const fresh = (await this.containers(replica.service, true)).filter((c) => !known.has(c.Id));
    const pick = fresh.find((c) => c.State === 'running') ?? fresh.find((c) => c.State === 'created' || c.State === 'restarting') ?? fresh[0];
    if (pick) return stateOf(await this.confirmed({ id: pick.Id }));
    const tasks = await this.docker.tasks({ service: [this.fullName(replica.service)], 'desired-state': ['running'] });
    const refused = tasks.find((t) => t.Status.State === 'rejected' || t.Status.State === 'failed');
    if (refused) return { id: replica.id, status: 'exited', exitCode: refused.Status.ContainerStatus?.ExitCode ?? -1, error: refused.Status.Err ?? refused.Status.Message ?? 'task failed' };
    return { id: replica.id, status: 'created', exitCode: 0, error: '' };
  }

  async logs(replica: Replica, lines: number): Promise<string> {
    if (replica.pending) return '';
    return this.docker.logs((await this.confirmed(replica)).Id, lines);
  }

  /** Swarm makes the tasks: a new replica is the service's next one. */
  async clone(from: Replica): Promise<Replica> {
    this.fullName(from.service);
    return this.pendingReplica(from.service);
  }
}
