/**
 * The only door from the activator to the engine: every container it sees is listed by this
 * project's labels, and every action re-checks those labels on the container (or service) acted
 * on, so the activator cannot touch a container outside the project (or a service it does not
 * manage), whatever a request or the engine's answer says. `ProjectScope` is Docker Compose's
 * (here); `StackScope` (stack-scope.ts) a Swarm stack's.
 */
import type { ContainerDetails, ContainerSummary, DockerClient } from './docker.ts';

export const PROJECT_LABEL = 'com.docker.compose.project';
export const SERVICE_LABEL = 'com.docker.compose.service';
export const NUMBER_LABEL = 'com.docker.compose.container-number';
/** Marks the replicas the activator added (scaling out), which it removes again when scaling in. */
export const ADDED_LABEL = 'org.modelfn.added-by';

/** One container of a function's service. */
export interface Replica {
  id: string;
  name: string;
  service: string;
  /** compose's container number (1, 2, ...). */
  number: number;
  /** running, paused, exited, created, restarting... */
  state: string;
  /** Its address on the project's network, when it has one. */
  ip?: string;
  /** Added by the activator (a clone), not by compose. */
  added: boolean;
  /** Swarm: a replica yet to be made by scaling the service up (no container yet). */
  pending?: boolean;
  /**
   * Swarm: a task still `starting` (its health check has not passed yet). It answers, but is not
   * put to sleep yet: a task frozen before its first health check would stay `starting`.
   */
  settling?: boolean;
}

/** What a replica is doing now, as the engine tells. */
export interface ReplicaState {
  /** The container this replica is now (a pending replica becomes one). */
  id: string;
  status: string;
  exitCode: number;
  error: string;
  ip?: string;
}

/** What the activator may do to the engine: one project's replicas of the services it manages. */
export interface Scope {
  readonly project: string;
  /** Every replica of a service, in number order (on Swarm, last, one pending to scale up to). */
  replicas(service: string): Promise<Replica[]>;
  /** Starts a sleeping replica; resolves to the replica to watch until it answers. */
  start(replica: Replica): Promise<Replica>;
  stop(replica: Replica, seconds: number): Promise<void>;
  pause(replica: Replica): Promise<void>;
  unpause(replica: Replica): Promise<void>;
  /** Removes a replica the activator added. */
  remove(replica: Replica): Promise<void>;
  state(replica: Replica): Promise<ReplicaState>;
  logs(replica: Replica, lines: number): Promise<string>;
  /** A new replica made like `from`, not started. */
  clone(from: Replica, number: number): Promise<Replica>;
}

/** A container's state and address, from its inspection. */
export function stateOf(details: ContainerDetails): ReplicaState {
  const ip = Object.values(details.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
  return { id: details.Id, status: details.State.Status, exitCode: details.State.ExitCode, error: details.State.Error, ip: ip || undefined };
}

/** Raised instead of acting on a container outside the scope. */
export class OutOfScopeError extends Error {
  override name = 'OutOfScopeError';
}

export class ProjectScope implements Scope {
  constructor(private readonly docker: DockerClient, readonly project: string, readonly services: ReadonlySet<string>) {
    if (!project) throw new OutOfScopeError('no compose project: the activator acts on one project only');
  }

  private check(labels: Record<string, string> | undefined, what: string): string {
    const service = labels?.[SERVICE_LABEL];
    if (labels?.[PROJECT_LABEL] !== this.project || !service || !this.services.has(service)) {
      throw new OutOfScopeError(`${what} is not a container of a scaled service of project '${this.project}': refused`);
    }
    return service;
  }

  private replicaOf(c: ContainerSummary): Replica {
    const service = this.check(c.Labels, `container ${c.Id.slice(0, 12)}`);
    const ip = Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.IPAddress).find(Boolean);
    return {
      id: c.Id,
      name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
      service,
      number: Number(c.Labels[NUMBER_LABEL] ?? 0),
      state: c.State,
      ip: ip || undefined,
      added: Boolean(c.Labels[ADDED_LABEL]),
    };
  }

  /** Every container of a service (running or not), in container-number order. */
  async replicas(service: string): Promise<Replica[]> {
    if (!this.services.has(service)) throw new OutOfScopeError(`'${service}' is not a scaled service of project '${this.project}': refused`);
    const found = await this.docker.list({ label: [`${PROJECT_LABEL}=${this.project}`, `${SERVICE_LABEL}=${service}`] }, { all: true });
    // The engine filtered already; a container that slipped through anyway is left alone.
    return found.filter((c) => c.Labels?.[PROJECT_LABEL] === this.project && c.Labels?.[SERVICE_LABEL] === service)
      .map((c) => this.replicaOf(c)).sort((a, b) => a.number - b.number);
  }

  /** Full ids of containers whose labels were checked: a container's labels never change. */
  private readonly checked = new Set<string>();

  /** Looks the container up and checks its labels before acting on it (once per container). */
  private async confirmed(replica: Pick<Replica, 'id'>): Promise<string> {
    if (this.checked.has(replica.id)) return replica.id;
    const details = await this.docker.inspect(replica.id);
    this.check(details.Config?.Labels, `container ${replica.id.slice(0, 12)}`);
    if (this.checked.size > 10_000) this.checked.clear();
    this.checked.add(details.Id);
    return details.Id;
  }

  async start(replica: Replica): Promise<Replica> {
    await this.docker.start(await this.confirmed(replica));
    return replica;
  }

  async stop(replica: Pick<Replica, 'id'>, seconds: number): Promise<void> {
    await this.docker.stop(await this.confirmed(replica), seconds);
  }

  async pause(replica: Pick<Replica, 'id'>): Promise<void> {
    await this.docker.pause(await this.confirmed(replica));
  }

  async unpause(replica: Pick<Replica, 'id'>): Promise<void> {
    await this.docker.unpause(await this.confirmed(replica));
  }

  async remove(replica: Pick<Replica, 'id' | 'added'>): Promise<void> {
    // Only replicas the activator added itself are ever removed; compose's own stay.
    if (!replica.added) throw new OutOfScopeError(`container ${replica.id.slice(0, 12)} was made by compose, not the activator: not removed`);
    await this.docker.remove(await this.confirmed(replica));
  }

  async state(replica: Pick<Replica, 'id'>): Promise<ReplicaState> {
    const details = await this.docker.inspect(replica.id);
    this.check(details.Config?.Labels, `container ${replica.id.slice(0, 12)}`);
    return stateOf(details);
  }

  async logs(replica: Pick<Replica, 'id'>, lines: number): Promise<string> {
    return this.docker.logs(await this.confirmed(replica), lines);
  }

  /**
   * A new replica of a service, made like `docker compose up --scale` would: a copy of an
   * existing replica's configuration with the next container number, on the same network
   * under the service's name. Created, not started.
   */
  async clone(from: Replica, number: number): Promise<Replica> {
    const details = await this.docker.inspect(from.id);
    const service = this.check(details.Config?.Labels, `container ${from.id.slice(0, 12)}`);
    const { Hostname: _hostname, ...config } = details.Config;
    const network = details.HostConfig.NetworkMode ?? Object.keys(details.NetworkSettings.Networks)[0];
    const name = details.Name.replace(/^\//, '').replace(/\d+$/, String(number));
    const labels = { ...details.Config.Labels, [NUMBER_LABEL]: String(number), [ADDED_LABEL]: 'activator' };
    const id = await this.docker.create(name, {
      ...config,
      Labels: labels,
      HostConfig: details.HostConfig,
      NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: [service] } } },
    });
    return { id, name, service, number, state: 'created', added: true };
  }
}
