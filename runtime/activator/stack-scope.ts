/**
 * The activator's door to the engine on Docker Swarm: one stack's services, found by the labels
 * `docker stack deploy` puts on them and on their tasks' containers. Swarm owns the tasks, so a
 * replica is added or taken away by changing the service's replica count (scale to 0 and back),
 * never by starting or stopping a task's container; a replica is frozen and thawed in place
 * (`docker pause` on its container, which Swarm leaves running). Replicas are the service's
 * tasks (seen on every node, with their addresses on the stack's network); every change re-checks
 * the stack's label on the service, every container action the labels on the container.
 *
 * Pause, unpause and logs act on containers of the engine the activator talks to: on a swarm of
 * several nodes, `wake: 'unpause'` reaches the tasks of the activator's node only.
 */
import type { ContainerDetails, ContainerSummary, DockerClient, ServiceDetails, TaskSummary } from './docker.ts';
import { DockerError } from './docker.ts';
import { OutOfScopeError, stateOf, type Replica, type ReplicaState, type Scope } from './scope.ts';

export const STACK_LABEL = 'com.docker.stack.namespace';
export const SWARM_SERVICE_LABEL = 'com.docker.swarm.service.name';

/** Task states after which a task will not run (its container exited, or it was never placed). */
const FAILED = new Set(['failed', 'rejected']);
/**
 * Task states of a replica whose container runs: `starting` until its health check first
 * passes (seconds, with the function's own check), then `running`. Whether it answers is asked
 * of its control server, not of the health check.
 */
const UP = new Set(['starting', 'running']);

/** A task's address on the stack's network (the first network that is not the routing mesh's). */
function addressOf(task: TaskSummary): string | undefined {
  const attachment = (task.NetworksAttachments ?? []).find((a) => a.Network?.Spec?.Name !== 'ingress' && a.Addresses?.length);
  return attachment?.Addresses?.[0]?.split('/')[0] || undefined;
}

export class StackScope implements Scope {
  /** For each pending replica: the service's tasks before it was asked for. */
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

  private check(labels: Record<string, string> | undefined, what: string): void {
    const full = labels?.[SWARM_SERVICE_LABEL] ?? '';
    const service = full.startsWith(`${this.project}_`) ? full.slice(this.project.length + 1) : '';
    if (labels?.[STACK_LABEL] !== this.project || !this.services.has(service)) {
      throw new OutOfScopeError(`${what} is not a container of a scaled service of stack '${this.project}': refused`);
    }
  }

  private async service(service: string): Promise<ServiceDetails> {
    const full = this.fullName(service);
    const details = await this.docker.service(full);
    if (details.Spec.Name !== full || details.Spec.Labels?.[STACK_LABEL] !== this.project) {
      throw new OutOfScopeError(`service ${full} is not a service of stack '${this.project}': refused`);
    }
    return details;
  }

  /** The service's tasks (by its id, so never another service's); with `up`, those meant to run whose container runs. */
  private async tasks(details: ServiceDetails, up = false): Promise<TaskSummary[]> {
    const tasks = await this.docker.tasks({ service: [details.ID], ...(up ? { 'desired-state': ['running'] } : {}) });
    return tasks.filter((t) => (t.ServiceID === undefined || t.ServiceID === details.ID)
      && (!up || (t.DesiredState === 'running' && UP.has(t.Status.State) && Boolean(t.Status.ContainerStatus?.ContainerID))));
  }

  /** This engine's containers of the service, by id (to tell a frozen task from a running one). */
  private async localContainers(service: string): Promise<Map<string, ContainerSummary>> {
    const full = this.fullName(service);
    const found = await this.docker.list({ label: [`${STACK_LABEL}=${this.project}`, `${SWARM_SERVICE_LABEL}=${full}`] }, { all: false });
    // The engine filtered already; a container that slipped through anyway is left alone.
    return new Map(found.filter((c) => c.Labels?.[STACK_LABEL] === this.project && c.Labels?.[SWARM_SERVICE_LABEL] === full).map((c) => [c.Id, c]));
  }

  private pendingReplica(service: string): Replica {
    return { id: `pending:${service}`, name: `${this.project}_${service} (one more task)`, service, number: Number.MAX_SAFE_INTEGER, state: 'exited', added: false, pending: true };
  }

  /** The tasks whose container runs (frozen ones as paused), by slot, then one pending replica (the next task). */
  async replicas(service: string): Promise<Replica[]> {
    const details = await this.service(service);
    const [tasks, local] = await Promise.all([this.tasks(details, true), this.localContainers(service)]);
    const replicas = tasks.flatMap((t): Replica[] => {
      const id = t.Status.ContainerStatus?.ContainerID;
      if (!id) return [];
      return [{ id, name: `${details.Spec.Name}.${t.Slot ?? 0}.${t.ID}`, service, number: t.Slot ?? 0, state: local.get(id)?.State ?? 'running', ip: addressOf(t), added: false, settling: t.Status.State === 'starting' }];
    }).sort((a, b) => a.number - b.number);
    return [...replicas, this.pendingReplica(service)];
  }

  /** Looks the container up and checks its labels before acting on it. */
  private async confirmed(replica: Pick<Replica, 'id'>): Promise<ContainerDetails> {
    const details = await this.docker.inspect(replica.id);
    this.check(details.Config?.Labels, `container ${replica.id.slice(0, 12)}`);
    return details;
  }

  /** Sets the service's replica count (resolves to it); retried once when another update came in between. */
  private async scaleTo(service: string, count: (spec: number, live: number) => number): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const details = await this.service(service);
      const spec = details.Spec.Mode?.Replicated?.Replicas ?? 0;
      const replicas = Math.max(0, count(spec, (await this.tasks(details, true)).length));
      if (spec === replicas) return replicas;
      try {
        await this.docker.updateService(details.ID, details.Version.Index, { ...details.Spec, Mode: { Replicated: { Replicas: replicas } } });
        return replicas;
      } catch (err) {
        if (attempt > 0 || !(err instanceof DockerError) || !/out of sequence/i.test(err.message)) throw err;
      }
    }
  }

  /**
   * Scales the service up by one task (unless one is on its way already) and answers a pending
   * replica that becomes the new task's container once Swarm runs it.
   */
  async start(replica: Replica): Promise<Replica> {
    const before = new Set((await this.tasks(await this.service(replica.service))).map((t) => t.ID));
    await this.scaleTo(replica.service, (spec, live) => Math.max(spec, live + 1));
    const id = `pending:${replica.service}:${++this.made}`;
    if (this.pending.size > 1000) this.pending.clear();
    this.pending.set(id, before);
    return { ...this.pendingReplica(replica.service), id, state: 'created' };
  }

  /**
   * Takes a replica away: the service's count goes down by one if that replica runs (Swarm picks
   * which task goes; a replica whose port was closed and that Swarm kept is reopened by the
   * activator's next look), or back to the tasks that run when it never came up. Resolves once
   * Swarm has marked the task to go, so it is no longer taken for a replica.
   */
  async stop(replica: Replica, _seconds: number): Promise<void> {
    this.pending.delete(replica.id);
    const details = await this.service(replica.service);
    const live = (await this.tasks(details, true)).some((t) => t.Status.ContainerStatus?.ContainerID === replica.id);
    const target = await this.scaleTo(replica.service, (spec, running) => Math.min(spec, running) - (live ? 1 : 0));
    const deadline = performance.now() + 10_000;
    while (performance.now() < deadline && (await this.tasks(details, true)).length > target) await new Promise((r) => setTimeout(r, 50));
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
   * A replica's state. A pending one becomes the new task once it runs (its container and
   * address); a new task Swarm could not place or run says why; until then it is `created`.
   */
  async state(replica: Replica): Promise<ReplicaState> {
    if (!replica.pending) {
      const details = await this.service(replica.service);
      const task = (await this.tasks(details)).find((t) => t.Status.ContainerStatus?.ContainerID === replica.id && t.DesiredState === 'running');
      if (!task) return { id: replica.id, status: 'exited', exitCode: -1, error: 'its task is gone' };
      const status = UP.has(task.Status.State) ? 'running' : FAILED.has(task.Status.State) ? 'exited' : 'created';
      return { id: replica.id, status, exitCode: task.Status.ContainerStatus?.ExitCode ?? 0, error: task.Status.Err ?? '', ip: addressOf(task) };
    }
    const before = this.pending.get(replica.id);
    if (!before) return { id: replica.id, status: 'exited', exitCode: -1, error: 'no task was asked for' };
    const fresh = (await this.tasks(await this.service(replica.service))).filter((t) => !before.has(t.ID));
    const running = fresh.find((t) => t.DesiredState === 'running' && UP.has(t.Status.State) && t.Status.ContainerStatus?.ContainerID);
    if (running) {
      this.pending.delete(replica.id);
      return { id: running.Status.ContainerStatus!.ContainerID!, status: 'running', exitCode: 0, error: '', ip: addressOf(running) };
    }
    // A task whose container exited, that no node would take, or that waits for a node that fits.
    const refused = fresh.find((t) => FAILED.has(t.Status.State) || (t.Status.State === 'pending' && t.Status.Err));
    if (refused) {
      const container = refused.Status.ContainerStatus?.ContainerID;
      return { id: container || replica.id, status: 'exited', exitCode: refused.Status.ContainerStatus?.ExitCode ?? -1, error: refused.Status.Err || refused.Status.Message || 'task failed' };
    }
    return { id: replica.id, status: 'created', exitCode: 0, error: '' };
  }

  /** The container's last lines; '' for one on another node (its task's error tells then). */
  async logs(replica: Replica, lines: number): Promise<string> {
    if (replica.pending) return '';
    const details = await this.confirmed(replica).catch(() => undefined);
    return details ? this.docker.logs(details.Id, lines) : '';
  }

  /** Swarm makes the tasks: a new replica is the service's next one. */
  async clone(from: Replica): Promise<Replica> {
    this.fullName(from.service);
    return this.pendingReplica(from.service);
  }
}
