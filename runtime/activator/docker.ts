/**
 * The few Docker Engine API calls the activator makes, over the engine's Unix socket with
 * node:http: list, inspect, start, stop, pause, unpause, create, remove, logs; on Swarm also a
 * service's inspect and update (its replica count) and its tasks. API v1.41 (Docker 20.10),
 * which later engines still serve.
 */
import { request } from 'node:http';

/** A container as the list call describes it. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Labels: Record<string, string>;
  /** created, running, paused, restarting, removing, exited or dead. */
  State: string;
  Status: string;
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string }> };
}

/** The parts of `GET /containers/{id}/json` the activator reads. */
export interface ContainerDetails {
  Id: string;
  Name: string;
  Config: Record<string, unknown> & { Labels: Record<string, string>; Hostname?: string };
  HostConfig: Record<string, unknown> & { NetworkMode?: string };
  State: { Status: string; Running: boolean; Paused: boolean; Restarting: boolean; ExitCode: number; Error: string; StartedAt: string };
  NetworkSettings: { Networks: Record<string, { IPAddress?: string; Aliases?: string[] | null }> };
}

/** A Swarm service as `GET /services/{id}` describes it (the parts the activator reads and writes back). */
export interface ServiceDetails {
  ID: string;
  Version: { Index: number };
  Spec: Record<string, unknown> & { Name: string; Labels?: Record<string, string>; Mode?: { Replicated?: { Replicas?: number } } };
}

/** A Swarm task as `GET /tasks` lists it. */
export interface TaskSummary {
  ID: string;
  ServiceID?: string;
  Slot?: number;
  NodeID?: string;
  DesiredState: string;
  Status: { State: string; Err?: string; Message?: string; ContainerStatus?: { ContainerID?: string; ExitCode?: number } };
  /** The task's addresses on its networks, as CIDRs (`10.0.1.5/24`). */
  NetworksAttachments?: { Network?: { Spec?: { Name?: string } }; Addresses?: string[] }[];
}

/** An answer of the engine other than success. */
export class DockerError extends Error {
  override name = 'DockerError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export interface DockerClient {
  list(filters: Record<string, string[]>, options?: { all?: boolean }): Promise<ContainerSummary[]>;
  inspect(id: string): Promise<ContainerDetails>;
  start(id: string): Promise<void>;
  stop(id: string, seconds: number): Promise<void>;
  pause(id: string): Promise<void>;
  unpause(id: string): Promise<void>;
  create(name: string, body: object): Promise<string>;
  remove(id: string): Promise<void>;
  /** The last lines a container wrote (stdout and stderr). */
  logs(id: string, lines: number): Promise<string>;
  /** Swarm: a service, by id or name. */
  service(id: string): Promise<ServiceDetails>;
  /** Swarm: replaces a service's spec; `version` is the index read with it (the engine refuses a stale one). */
  updateService(id: string, version: number, spec: object): Promise<void>;
  /** Swarm: the tasks matching the filters. */
  tasks(filters: Record<string, string[]>): Promise<TaskSummary[]>;
}

export const API_VERSION = 'v1.41';
/**
 * Service updates write back the whole spec read before; the engine drops the fields an older API
 * version does not know, so those calls use the engine's own version (asked once), never older
 * than API_VERSION.
 */
const newerOf = (a: string, b: string) => {
  const [x, y] = [a, b].map((v) => v.replace(/^v/, '').split('.').map(Number));
  return x[0] !== y[0] ? (x[0] > y[0] ? a : b) : (x[1] ?? 0) >= (y[1] ?? 0) ? a : b;
};

/**
 * Removes the engine's framing of a non-TTY log stream: each frame is an 8-byte header
 * (stream, three zero bytes, big-endian length) and its payload.
 */
export function demultiplex(raw: Buffer): string {
  let out = '';
  let at = 0;
  while (at + 8 <= raw.length && raw[at + 1] === 0 && raw[at + 2] === 0 && raw[at + 3] === 0) {
    const length = raw.readUInt32BE(at + 4);
    out += raw.subarray(at + 8, at + 8 + length).toString('utf8');
    at += 8 + length;
  }
  return at === 0 ? raw.toString('utf8') : out;
}

/**
 * A client for the engine at `address`: a Unix socket's path, or `tcp://host:port` (a socket
 * proxy that lets through only the calls the activator makes).
 *
 * @example const docker = dockerClient(); await docker.list({ label: ['com.docker.compose.project=modelfn'] });
 */
export function dockerClient(address = '/var/run/docker.sock', timeoutMs = 30_000): DockerClient {
  const tcp = /^tcp:\/\/([^:/]+):(\d+)\/?$/.exec(address);
  const where = tcp ? { host: tcp[1], port: Number(tcp[2]) } : { socketPath: address };
  const call = (method: string, path: string, body?: object, version: string | null = API_VERSION): Promise<{ status: number; data: Buffer }> => new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({
      ...where,
      method,
      path: version ? `/${version}${path}` : path,
      headers: { Host: 'docker', ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}) },
      timeout: timeoutMs,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, data: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`the Docker engine did not answer ${method} ${path} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
  let engineVersion: Promise<string> | undefined;
  /** The engine's own API version (unversioned `GET /version`), never older than API_VERSION. */
  const swarmVersion = () => (engineVersion ??= call('GET', '/version', undefined, null).then(({ status, data }) => {
    const version = status === 200 ? (JSON.parse(data.toString('utf8')) as { ApiVersion?: string }).ApiVersion : undefined;
    return version && /^\d+\.\d+$/.test(version) ? newerOf(`v${version}`, API_VERSION) : API_VERSION;
  }, () => {
    engineVersion = undefined;
    return API_VERSION;
  }));
  const expect = async (method: string, path: string, ok: number[], body?: object, version: string = API_VERSION): Promise<Buffer> => {
    const { status, data } = await call(method, path, body, version);
    if (ok.includes(status)) return data;
    let message = data.toString('utf8');
    try {
      message = (JSON.parse(message) as { message?: string }).message ?? message;
    } catch {
      // not JSON: keep the text
    }
    throw new DockerError(status, `${method} ${path}: ${status} ${message.trim()}`);
  };
  const id = (value: string) => encodeURIComponent(value);
  return {
    async list(filters, options = {}) {
      const query = new URLSearchParams({ all: String(options.all ?? false), filters: JSON.stringify(filters) });
      return JSON.parse((await expect('GET', `/containers/json?${query}`, [200])).toString('utf8')) as ContainerSummary[];
    },
    async inspect(container) {
      return JSON.parse((await expect('GET', `/containers/${id(container)}/json`, [200])).toString('utf8')) as ContainerDetails;
    },
    // 304: already in the wanted state.
    async start(container) {
      await expect('POST', `/containers/${id(container)}/start`, [204, 304]);
    },
    async stop(container, seconds) {
      await expect('POST', `/containers/${id(container)}/stop?t=${Math.max(0, Math.round(seconds))}`, [204, 304]);
    },
    async pause(container) {
      await expect('POST', `/containers/${id(container)}/pause`, [204]);
    },
    async unpause(container) {
      await expect('POST', `/containers/${id(container)}/unpause`, [204]);
    },
    async create(name, body) {
      const data = await expect('POST', `/containers/create?name=${encodeURIComponent(name)}`, [201], body);
      return (JSON.parse(data.toString('utf8')) as { Id: string }).Id;
    },
    async remove(container) {
      await expect('DELETE', `/containers/${id(container)}?force=true`, [204, 404]);
    },
    async logs(container, lines) {
      return demultiplex(await expect('GET', `/containers/${id(container)}/logs?stdout=true&stderr=true&tail=${lines}`, [200]));
    },
    async service(service) {
      return JSON.parse((await expect('GET', `/services/${id(service)}`, [200], undefined, await swarmVersion())).toString('utf8')) as ServiceDetails;
    },
    async updateService(service, version, spec) {
      await expect('POST', `/services/${id(service)}/update?version=${version}`, [200], spec, await swarmVersion());
    },
    async tasks(filters) {
      const query = new URLSearchParams({ filters: JSON.stringify(filters) });
      return JSON.parse((await expect('GET', `/tasks?${query}`, [200], undefined, await swarmVersion())).toString('utf8')) as TaskSummary[];
    },
  };
}
