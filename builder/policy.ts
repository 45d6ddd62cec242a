/**
 * Deployment policy: the decisions every deploy target shares, in one place. The renderers in
 * builder/render/ (nginx, compose, swarm, kubernetes) turn these into their own formats and import
 * nothing from each other's files but what they render; a new target reads its numbers here.
 *
 * Nothing here reads the environment: the generated files are a function of the source tree.
 */
import { FUNCTION_KEEPALIVE_TIMEOUT_MS } from '../runtime/core/config.ts';
import type { ResolvedFunction } from '../runtime/function/define.ts';
import { atVersion } from '../runtime/function/version.ts';

/** The first line of every generated file. */
export const GENERATED_HEADER = '# Generated from functions/ by modelfn build: do not edit; run `npm run build`.';

/** Where the build writes each generated file, relative to the project root. */
export const FILES = {
  nginx: 'nginx/nginx.conf',
  compose: 'docker-compose.yml',
  swarmStack: 'deploy/swarm/stack.yml',
  swarmNginx: 'deploy/swarm/nginx.conf',
  k8sDir: 'deploy/k8s',
  knativeDir: 'deploy/knative',
} as const;

/**
 * The gateway's page for browsers (runtime/pages/ui.ts), built into the build output's gateway
 * folder (the gateway image's context, beside a copy of nginx.conf) and copied into the image
 * here. Never committed: the page's code has one source, runtime/pages/ui.ts.
 */
/**
 * Where the gateway runs its nginx.conf from: an anonymous volume, filled from the image when the
 * container is created (and renewed by every `up`; on Swarm, each new task has its own), that
 * `modelfn traffic` can write while the root file system stays read-only
 * (builder/docker/traffic.ts). The image holds the compose render (`file`) and the Swarm one
 * (`swarmFile`, its DNS answers kept for Swarm's time) side by side.
 */
export const GATEWAY_LIVE = { dir: '/etc/nginx/live', file: '/etc/nginx/live/nginx.conf', swarmFile: '/etc/nginx/live/swarm.conf' } as const;

/** The container label of the Swarm gateway carrying a hash of its declared config: a new hash rolls it (builder/render/swarm.ts). */
export const GATEWAY_CONFIG_LABEL = 'org.modelfn.gateway-config';

export const GATEWAY_PAGE = { dir: '_gateway', file: 'index.html', image: '/etc/nginx/modelfn/index.html' } as const;

/** The user the runtime image runs as (distroless's "nonroot"). */
export const RUNTIME_USER = { uid: 65532, gid: 65532 } as const;
export const runtimeUser = () => `${RUNTIME_USER.uid}:${RUNTIME_USER.gid}`;

/** Port a function container listens on, and the port nginx listens on inside its container. */
export const FUNCTION_PORT = 8080;
export const GATEWAY_PORT = 8080;

/** The published gateway address: variables read by compose and `docker stack deploy` when they run. */
export const PUBLISHED_HOST = '${MODELFN_HOST:-127.0.0.1}';
export const PUBLISHED_PORT = '${MODELFN_PORT:-8080}';

/**
 * Image names. The compose and swarm files name the tag through MODELFN_IMAGE_TAG, read when the
 * stack starts (default `latest`), so the files stay the same whatever tag a builder uses.
 */
export const TAG_VARIABLE = '${MODELFN_IMAGE_TAG:-latest}';
export const functionImage = (name: string, tag: string) => `modelfn/${name}:${tag}`;
export const gatewayImage = (tag: string) => `modelfn/gateway:${tag}`;
/** The activator (scale to zero on compose and swarm): its bundle on the runtime image. */
export const activatorImage = (tag: string) => `modelfn/activator:${tag}`;

/** The activator's service name: the gateway hands it the requests of sleeping functions. */
export const ACTIVATOR_SERVICE = 'activator';
/** Port of the control server of a function that scales (reached by the activator only). */
export const CONTROL_PORT = 9090;
/** The activator's share: it holds requests and talks to the engine, nothing more. */
export const ACTIVATOR_RESOURCES = { limits: { cpus: 0.5, memoryMiB: 128 } } as const;
/** Longest a wake may take (the activator's MODELFN_WAKE_TIMEOUT_MS default); the gateway waits this plus a function's timeout. */
export const WAKE_BOUND_MS = 30_000;
/**
 * How long the gateway waits to connect to a replica of a function that scales before waking it
 * instead, per deployment. A stopped replica's address vanishes (no refusal comes), and the
 * engine's DNS may still be held for it, so each wake from stopped pays this once. A replica that
 * waits longer to connect is still served: the activator finds it awake and forwards the request.
 * - compose: every replica is on the gateway's host and bridge, where the kernel completes a
 *   connect within the connecting call itself (the handshake crosses the veth pair in softirq,
 *   however busy the function's process is), and nginx handles a completed connect before its
 *   timers: 10 ms is still a wide margin (it was 100 ms, a fifth of every stopped wake). Only a
 *   replica whose accept queue is full waits longer, and the activator then forwards to it.
 * - swarm: replicas may run on other machines, whose round trip (say, Wi-Fi between small hosts)
 *   can take tens of milliseconds: 100 ms.
 */
export const SCALED_CONNECT_TIMEOUT_MS = { compose: 10, swarm: 100 } as const;

/** Health check of a function container: the protocol's readiness, through the image's own script. */
export const HEALTHCHECK = {
  command: ['CMD', '/usr/local/bin/node', '/app/healthcheck.mjs'],
  intervalSeconds: 5,
  timeoutSeconds: 3,
  retries: 3,
  startPeriodSeconds: 10,
} as const;

/** Kubernetes probes: traffic once the model is loaded; a restart when the process stops answering or its model fails. */
export const PROBES = {
  readiness: { periodSeconds: 5, timeoutSeconds: 3, failureThreshold: 2 },
  liveness: { initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 3, failureThreshold: 3 },
} as const;

/**
 * Seconds a stopping replica gets to finish its requests before it is killed: its longest
 * request, plus a margin for the shutdown itself.
 */
export function stopGraceSeconds(fn: ResolvedFunction): number {
  return Math.ceil(fn.limits.timeoutMs / 1000) + 5;
}

/**
 * Seconds a terminating Kubernetes pod keeps serving before it is signalled: Kubernetes removes it
 * from Services and ingress-nginx's upstreams at the same time as it starts the pod's shutdown, and
 * the runtime stops accepting connections on SIGTERM. The image has no shell and no `sleep`:
 * node waits instead.
 */
export const PRESTOP_SECONDS = 5;

/** Extra time the gateway gives a function beyond its own timeout, so the function's JSON 504 arrives first. */
export const TIMEOUT_GRACE_MS = 1000;

/**
 * How long the gateway keeps an idle connection to a function. Shorter than the function's own
 * keep-alive (FUNCTION_KEEPALIVE_TIMEOUT_MS, runtime/core/config.ts), so the gateway closes
 * first and never sends a request on a connection the function is closing. Should it still
 * meet one (the function restarts or stops), nginx retries the request on another connection
 * (`proxy_next_upstream error ... non_idempotent`; a failure on a reused connection costs no try).
 */
export const UPSTREAM_KEEPALIVE_TIMEOUT_MS = FUNCTION_KEEPALIVE_TIMEOUT_MS - 15_000;

/** Idle connections each gateway worker keeps per function: the most concurrency we benchmark (64). */
export const UPSTREAM_KEEPALIVE_CONNECTIONS = 64;

/** Seconds the gateway keeps a DNS answer for a function's replicas, per discovery setting. */
export const DNS_VALID_SECONDS = {
  compose: 5,
  /**
   * Swarm takes a stopping task out of DNS two seconds before it signals the task (its gossip
   * delay), and the runtime stops accepting connections on the signal: an answer kept longer
   * than that sends requests to a replica that is no longer listening.
   */
  swarm: 1,
} as const;

/**
 * What one replica of a function may use, and what a scheduler sets aside for it. The
 * reservations are what an idle replica needs (about 40 to 60 MiB measured), with room for a
 * request, and small enough for many replicas on a 2-core machine.
 */
export const REPLICA_RESOURCES = {
  limits: { cpus: 2, memoryMiB: 512 },
  reservations: { cpus: 0.1, memoryMiB: 128 },
} as const;

/**
 * The gateway's share: nginx needs little, but the request bodies it holds live in its tmpfs,
 * which counts against its memory (GATEWAY_BODIES.spaceMiB of it). Its worker processes follow
 * the CPU limit (builder/render/nginx.ts).
 */
export const GATEWAY_RESOURCES = {
  limits: { cpus: 1, memoryMiB: 512 },
  reservations: { cpus: 0.05, memoryMiB: 32 },
} as const;

/**
 * Request bodies at the gateway. nginx reads a body whole before it passes it on (a slow client
 * then costs a function nothing), in memory up to `memoryBytes` and in a file on the gateway's
 * tmpfs beyond. That space is shared out by size class (by the digits of Content-Length; a body
 * without one counts as large): each class may hold `spaceMiB` of bodies of its largest size, a
 * function half of that (at least one body), counted by nginx's `limit_conn` before a byte of the
 * body is read. Past either count a request gets 503 JSON with Retry-After at once, so the space
 * never fills (64 MiB once filled with 20 concurrent 10 MB bodies: nginx answered 500s).
 */
export const GATEWAY_BODIES = {
  memoryBytes: 16 * 1024,
  classes: [
    { name: 'small', digits: 5, largestBytes: 99_999, spaceMiB: 16 },
    { name: 'medium', digits: 6, largestBytes: 999_999, spaceMiB: 32 },
    /** Seven digits and more: a function's own body limit is the largest. */
    { name: 'large', digits: undefined, largestBytes: undefined, spaceMiB: 144 },
  ],
  /** All of the classes' space. */
  spaceMiB: 192,
  /** nginx's status for a request over a count, answered to the client as 503 (a 503 of the upstream's would wake a sleeping function instead). */
  busyStatus: 507,
} as const;

/**
 * Requests the gateway lets a function have in flight at once, per replica it may run (its
 * versions' replicas added up; a function that scales, at its most). Past it a request gets the
 * gateway's 503 JSON with Retry-After at once, in C, before anything is read or forwarded: when
 * clients arrive faster than a function answers (and give up), the requests beyond a short queue
 * would only wait until their clients have gone, and refusing them in nginx costs a fraction of
 * what the function's own refusal does. 128 in flight is about 25 ms of work for iris on one
 * core, and the function's own queue (limits.maxQueue, maxQueueMs) bounds the slow models.
 */
export const GATEWAY_IN_FLIGHT_PER_REPLICA = 128;

/** Size of the gateway's writable /tmp: the bodies' space and the usual temporary files. */
export const GATEWAY_TMP_MIB = GATEWAY_BODIES.spaceMiB + 64;

/** Kubernetes: the CPU request (what the autoscaler's utilisation is measured against). */
export const POD_CPU_REQUEST = '250m';

/** Average CPU use, in percent of the request, above which the autoscaler adds replicas. */
export const CPU_TARGET_PERCENT = 80;

/** The most replicas the autoscaler may run: four times the declared ones, at least 4. */
export const maxReplicas = (fn: ResolvedFunction) => Math.max(4, fn.replicas * 4);

/** Size of the writable /tmp every container gets (its root file system is read-only). */
export const TMP_MIB = 64;

/** The label every function service carries, so tools can find a function's service. */
export const FUNCTION_LABEL = 'org.modelfn.function';
/** The label naming which version of a function a service runs (a function with several versions). */
export const VERSION_LABEL = 'org.modelfn.version';

/** Where API keys come from in compose and swarm: a secret file beside the generated file. */
export const secretFile = (secret: string) => `./secrets/${secret}`;

/**
 * The environment a function's container gets: its limits (so the function and the gateway
 * agree), from the declaration or the built-in defaults, never from the builder's environment.
 */
export function functionEnvironment(fn: ResolvedFunction): Record<string, string> {
  return {
    // One version among several: the containers of its own service run it.
    ...(fn.versions.length > 1 ? { MODELFN_VERSION: fn.version } : {}),
    MODELFN_BODY_LIMIT: String(fn.limits.bodySize),
    MODELFN_TIMEOUT_MS: String(fn.limits.timeoutMs),
    // Behind the gateway, its JSON access log is the line per request (with the same request
    // id); a second line from the function cost 38% of a container's throughput, all of it in
    // the engine's log pipeline (bench: 5.7k -> 3.5k requests/s). Errors are still logged.
    MODELFN_ACCESS_LOG: 'false',
    // The service's name resolves to every replica: GET /stats adds them up for the live view.
    // One version among several names every version's service, so /stats has each version's figures.
    MODELFN_PEERS: deploymentUnits(fn).map((unit) => `${serviceName(unit)}:${FUNCTION_PORT}`).join(','),
  };
}

/**
 * The service (compose, swarm) or Deployment (Kubernetes) that runs a function, or one version
 * of a function with several: `<name>-v<N>`, each its own deployment unit.
 */
export const serviceName = (fn: Pick<ResolvedFunction, 'name' | 'version' | 'versions'>) => (fn.versions.length > 1 ? `${fn.name}-v${fn.version}` : fn.name);

/**
 * What is deployed for a function: itself, or each of its versions as a function of its own
 * (runtime/function/version.ts atVersion), named by serviceName.
 *
 * @example deploymentUnits(flowers).map(serviceName) // ['flowers-v1', 'flowers-v2']
 */
export function deploymentUnits(fn: ResolvedFunction): ResolvedFunction[] {
  return fn.versions.length > 1 ? fn.versions.map((v) => atVersion(fn, v.version)) : [fn];
}

/**
 * The deployment units that scale with their traffic (a function's `scale`, or one version's
 * own): what the activator wakes and puts to sleep, each by its service's name.
 *
 * @example scaledUnits([flowers]).map(serviceName) // ['flowers-v1'] (versions: { '1': { scale: { min: 0 } } })
 */
export function scaledUnits(functions: readonly ResolvedFunction[]): ResolvedFunction[] {
  return functions.flatMap(deploymentUnits).filter((unit) => unit.scale);
}
