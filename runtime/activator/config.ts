/**
 * The activator's settings, from its environment (the compose file sets them from the
 * declarations): which functions scale and how, the engine's socket, who may call it.
 */
import * as z from 'zod/mini';
import '../core/zod.ts';
import type { ActivatorOptions, ScaledSpec } from './activator.ts';

export interface ActivatorConfig extends Pick<ActivatorOptions, 'functionPort' | 'controlPort' | 'wakeTimeoutMs' | 'failureCooldownMs' | 'stopDelayMs' | 'tickMs' | 'budgetBytes'> {
  host: string;
  port: number;
  socket: string;
  /** Docker Compose (a project's containers) or Docker Swarm (a stack's services). */
  orchestrator: 'compose' | 'swarm';
  /** The compose project or swarm stack; by default read from the activator's own container labels. */
  project?: string;
  /** Host name whose addresses alone may send requests (the gateway). */
  from: string;
  functions: ScaledSpec[];
}

/** The activator's variables, their defaults and meaning (the README's table). */
export const ACTIVATOR_SETTINGS = [
  { env: 'MODELFN_SCALED_FUNCTIONS', default: '[]', description: 'the functions that scale, as JSON (written by the build into the compose file)' },
  { env: 'MODELFN_DOCKER_SOCKET', default: '/var/run/docker.sock', description: "the engine's socket, or `tcp://host:port` of a socket proxy" },
  { env: 'MODELFN_ORCHESTRATOR', default: 'compose', description: '`compose` (it starts, stops, freezes a project\'s containers) or `swarm` (it scales a stack\'s services, freezes their tasks)' },
  { env: 'MODELFN_PROJECT', default: '', description: "the compose project or swarm stack it acts on (default: its own container's label)" },
  { env: 'MODELFN_ACTIVATOR_FROM', default: 'gateway', description: 'host name whose addresses alone may send it requests' },
  { env: 'MODELFN_WAKE_TIMEOUT_MS', default: '30000', description: 'longest a wake may take before the held requests get 503' },
  { env: 'MODELFN_WAKE_RETRY_MS', default: '5000', description: 'after a failed wake, requests get 503 at once for this long (Retry-After)' },
  { env: 'MODELFN_SCALE_TICK_MS', default: '1000', description: 'how often it looks at every function (idle time, requests in flight)' },
  { env: 'MODELFN_ACTIVATOR_BUDGET_BYTES', default: '67108864', description: 'bytes of requests it holds or passes on at once (each counts its body, at least 256 KiB), half of them for any one function (at least one body of its limit); beyond, 503 JSON with Retry-After at once' },
  { env: 'MODELFN_STOP_DELAY_MS', default: '6000', description: "how long a replica to be stopped keeps its address, port closed, before its container stops: longer than the gateway keeps a DNS answer (5 s), so the gateway never connects to a vanished address" },
] as const;

const atLeast = (min: number) => z.int().check(z.gte(min));
const spec = z.strictObject({
  name: z.string().check(z.minLength(1)),
  prefix: z.string().check(z.startsWith('/')),
  min: atLeast(0),
  max: atLeast(1),
  idleSeconds: atLeast(1),
  wake: z.enum(['start', 'unpause']),
  concurrency: atLeast(1),
  timeoutMs: atLeast(1),
  bodySize: atLeast(1),
});

const value = (env: NodeJS.ProcessEnv, name: (typeof ACTIVATOR_SETTINGS)[number]['env']) =>
  env[name] || ACTIVATOR_SETTINGS.find((s) => s.env === name)!.default;

function integer(env: NodeJS.ProcessEnv, name: (typeof ACTIVATOR_SETTINGS)[number]['env'], min: number): number {
  const n = Number(value(env, name));
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name}=${JSON.stringify(env[name])}: expected an integer of at least ${min}`);
  return n;
}

function orchestrator(name: string): ActivatorConfig['orchestrator'] {
  if (name === 'compose' || name === 'swarm') return name;
  throw new Error(`MODELFN_ORCHESTRATOR=${JSON.stringify(name)}: expected compose or swarm`);
}

/** Reads the activator's settings; throws naming the variable that is wrong. */
export function readActivatorConfig(env: NodeJS.ProcessEnv = process.env): ActivatorConfig {
  const problem = (why: string) => new Error(`MODELFN_SCALED_FUNCTIONS: expected a JSON list of scaled functions (${why})`);
  let listed: unknown;
  try {
    listed = JSON.parse(value(env, 'MODELFN_SCALED_FUNCTIONS'));
  } catch (err) {
    throw problem((err as Error).message);
  }
  const parsed = z.array(spec).safeParse(listed);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw problem(`${issue.path.join('.') || 'the list'}: ${issue.message}`);
  }
  const functions: ScaledSpec[] = parsed.data;
  return {
    host: env.MODELFN_HOST || '127.0.0.1',
    port: Number(env.PORT || 8080),
    socket: value(env, 'MODELFN_DOCKER_SOCKET'),
    orchestrator: orchestrator(value(env, 'MODELFN_ORCHESTRATOR')),
    project: value(env, 'MODELFN_PROJECT') || undefined,
    from: value(env, 'MODELFN_ACTIVATOR_FROM'),
    functions,
    functionPort: 8080,
    controlPort: Number(env.MODELFN_CONTROL_PORT || 9090),
    wakeTimeoutMs: integer(env, 'MODELFN_WAKE_TIMEOUT_MS', 100),
    failureCooldownMs: integer(env, 'MODELFN_WAKE_RETRY_MS', 0),
    stopDelayMs: integer(env, 'MODELFN_STOP_DELAY_MS', 0),
    tickMs: integer(env, 'MODELFN_SCALE_TICK_MS', 50),
    budgetBytes: integer(env, 'MODELFN_ACTIVATOR_BUDGET_BYTES', 1024 * 1024),
  };
}
