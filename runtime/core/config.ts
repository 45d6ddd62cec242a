/**
 * Every runtime setting, read from the environment in this one place.
 *
 * Each setting has a documented default; `SETTINGS` is the table the README and
 * `--help` print, so documentation and behaviour cannot drift apart.
 */
import { availableParallelism } from 'node:os';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * How long a function server keeps an idle keep-alive connection open (Node's default is 5 s).
 * Longer than its proxies keep theirs (nginx's upstream keepalive_timeout, 60 s; builder/policy.ts
 * derives it from this; ingress-nginx's default is 60 s too), so the proxy always closes first
 * and never sends a request on a connection the function is closing. Not a setting: the two
 * must move together.
 */
export const FUNCTION_KEEPALIVE_TIMEOUT_MS = 75_000;

export interface RuntimeConfig {
  /** Address the server binds. */
  host: string;
  /** Port the server listens on. */
  port: number;
  /** Default request body limit in bytes, for functions that declare none. */
  bodyLimit: number;
  /** Default request timeout in milliseconds, for functions that declare none. */
  timeoutMs: number;
  /** How long in-flight requests may take to finish after SIGTERM/SIGINT. */
  shutdownTimeoutMs: number;
  /** Largest number of elements one tensor may declare. */
  maxElements: number;
  /** Write one JSON log line per request. */
  accessLog: boolean;
  logLevel: LogLevel;
  /** onnxruntime threads inside one operator (0: let onnxruntime choose). */
  intraOpThreads: number;
  /** onnxruntime threads across operators (0: let onnxruntime choose). */
  interOpThreads: number;
  /** Let onnxruntime's pool threads spin while idle. */
  ortSpinning: boolean;
  /** Server processes per function (one container). */
  workers: number;
  /** Run inference on a thread of its own; 'auto': small models on the main thread (see runtime/engine/placement.ts). */
  inferenceThread: boolean | 'auto';
  /** `host:port` resolving to every replica of this function, for `GET /stats` to add them up ('' = this replica alone). */
  peers: string;
  /** One inference with the function's example before turning ready. */
  warmUp: boolean;
  /** Port of the control server the activator sleeps and wakes the function through (0: none). */
  controlPort: number;
  /** Host name whose addresses alone may use the control server (empty: any). */
  controlFrom: string;
  /** An event-loop turn longer than this (ms) refuses the work arriving in it with 429 (0: never). */
  shedLagMs: number;
  /** The version of the function this server runs ('' = its highest). */
  version: string;
}

interface Setting {
  env: string;
  default: string;
  description: string;
}

/** The settings table: variable, default, meaning. */
export const SETTINGS: readonly Setting[] = [
  { env: 'MODELFN_HOST', default: '127.0.0.1', description: 'address to bind (images set 0.0.0.0)' },
  { env: 'PORT', default: '8080', description: 'port to listen on (`--port` wins)' },
  { env: 'MODELFN_BODY_LIMIT', default: '10mb', description: 'request body limit when a function declares none (bytes, or kb/mb)' },
  { env: 'MODELFN_TIMEOUT_MS', default: '30000', description: 'request timeout when a function declares none' },
  { env: 'MODELFN_SHUTDOWN_TIMEOUT_MS', default: '30000', description: 'time in-flight requests get to finish on SIGTERM/SIGINT' },
  { env: 'MODELFN_MAX_ELEMENTS', default: '16777216', description: 'most elements one tensor may declare; larger shapes are refused before allocation' },
  { env: 'MODELFN_ACCESS_LOG', default: 'true', description: 'one JSON log line per request' },
  { env: 'MODELFN_LOG_LEVEL', default: 'info', description: 'debug, info, warn or error' },
  { env: 'MODELFN_INTRA_OP_THREADS', default: '0', description: "onnxruntime intra-op threads; 0 lets onnxruntime use every core" },
  { env: 'MODELFN_INTER_OP_THREADS', default: '0', description: 'onnxruntime inter-op threads; 0 lets onnxruntime choose' },
  { env: 'MODELFN_WORKERS', default: '1', description: 'server processes per function, sharing its port; auto = one per core' },
  { env: 'MODELFN_INFERENCE_THREAD', default: 'auto', description: 'run inference on its own thread, so a long run never stalls the server (true); auto: a model whose run costs less than the hop to a thread runs on the main thread, its large requests still on a thread' },
  { env: 'MODELFN_ORT_SPINNING', default: 'false', description: "let onnxruntime's threads spin while idle (lower latency, busier cores)" },
  { env: 'MODELFN_PEERS', default: 'none', description: "host:port (or a comma-separated list) reaching every replica of the function, each name resolved to all its addresses: GET /stats adds up all replicas" },
  { env: 'MODELFN_WARMUP', default: 'true', description: "one inference with the function's example before the server listens, so the first request is not the slow one" },
  { env: 'MODELFN_CONTROL_PORT', default: '0', description: 'port of the control server the activator puts the function to sleep and wakes it through (0: none; set by the compose file for functions with `scale`)' },
  { env: 'MODELFN_CONTROL_FROM', default: '', description: 'host name whose addresses alone may use the control server (the compose file sets `activator`)' },
  { env: 'MODELFN_SHED_LAG_MS', default: '100', description: "when the server's event loop falls this many ms behind and stays behind (or a flood arrives within one late turn), POST requests arriving meanwhile get 429 with Retry-After before their body is read (0: never)" },
  { env: 'MODELFN_VERSION', default: 'highest', description: "the function's version this server runs; each version's containers set theirs" },
];

/** A setting that cannot be used; the message names the variable and the problem. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

/**
 * Parses a byte size such as `1048576`, `512kb` or `10mb` (binary units).
 *
 * @example parseByteSize('10mb') // 10485760
 */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!match) return undefined;
  const unit = UNITS[match[2].toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

function defaultOf(env: string): string {
  const setting = SETTINGS.find((s) => s.env === env);
  if (!setting) throw new Error(`unknown setting ${env}`);
  return setting.default;
}

function raw(env: NodeJS.ProcessEnv, name: string): string {
  const value = env[name];
  return value === undefined || value === '' ? defaultOf(name) : value;
}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const text = raw(env, name);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name}=${JSON.stringify(text)}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

function boolean(env: NodeJS.ProcessEnv, name: string, expected = 'true or false'): boolean {
  const text = raw(env, name).toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(text)) return true;
  if (['0', 'false', 'no', 'off'].includes(text)) return false;
  throw new ConfigError(`${name}=${JSON.stringify(text)}: expected ${expected}`);
}

/**
 * Reads the runtime configuration from the environment.
 *
 * @example
 * const config = readConfig({ PORT: '9000' });
 * config.port; // 9000
 */
export function readConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const bodyText = raw(env, 'MODELFN_BODY_LIMIT');
  const bodyLimit = parseByteSize(bodyText);
  if (bodyLimit === undefined) {
    throw new ConfigError(`MODELFN_BODY_LIMIT=${JSON.stringify(bodyText)}: expected a size such as 1048576, 512kb or 10mb`);
  }
  const logLevel = raw(env, 'MODELFN_LOG_LEVEL') as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`MODELFN_LOG_LEVEL=${JSON.stringify(logLevel)}: expected debug, info, warn or error`);
  }
  const cores = availableParallelism();
  return {
    host: raw(env, 'MODELFN_HOST'),
    port: integer(env, 'PORT', 0, 65535),
    bodyLimit,
    timeoutMs: integer(env, 'MODELFN_TIMEOUT_MS', 1),
    shutdownTimeoutMs: integer(env, 'MODELFN_SHUTDOWN_TIMEOUT_MS', 0),
    maxElements: integer(env, 'MODELFN_MAX_ELEMENTS', 1),
    accessLog: boolean(env, 'MODELFN_ACCESS_LOG'),
    logLevel,
    intraOpThreads: integer(env, 'MODELFN_INTRA_OP_THREADS', 0, cores * 4),
    interOpThreads: integer(env, 'MODELFN_INTER_OP_THREADS', 0, cores * 4),
    ortSpinning: boolean(env, 'MODELFN_ORT_SPINNING'),
    inferenceThread: raw(env, 'MODELFN_INFERENCE_THREAD').toLowerCase() === 'auto' ? 'auto' : boolean(env, 'MODELFN_INFERENCE_THREAD', 'true, false or auto'),
    workers: raw(env, 'MODELFN_WORKERS') === 'auto' ? cores : integer(env, 'MODELFN_WORKERS', 1, cores * 4),
    peers: raw(env, 'MODELFN_PEERS').trim() === 'none' ? '' : raw(env, 'MODELFN_PEERS').trim(),
    warmUp: boolean(env, 'MODELFN_WARMUP'),
    controlPort: integer(env, 'MODELFN_CONTROL_PORT', 0, 65535),
    controlFrom: raw(env, 'MODELFN_CONTROL_FROM'),
    shedLagMs: integer(env, 'MODELFN_SHED_LAG_MS', 0, 60_000),
    version: raw(env, 'MODELFN_VERSION').trim() === 'highest' ? '' : raw(env, 'MODELFN_VERSION').trim(),
  };
}

/**
 * onnxruntime's intra-op threads for one process: the setting when given, else the cores shared
 * out between the workers (0 with one worker: onnxruntime then uses every core itself).
 */
export function intraOpThreadsFor(config: Pick<RuntimeConfig, 'intraOpThreads' | 'workers'>): number {
  if (config.intraOpThreads || config.workers <= 1) return config.intraOpThreads;
  return Math.max(1, Math.floor(availableParallelism() / config.workers));
}

/**
 * onnxruntime's settings for one process (its threads, whether they spin), one reading for the
 * model's loader (serve/server.ts) and the early inference thread's guess (serve/early-plan.ts):
 * a guess made from other settings would never be taken.
 *
 * @example sessionSettingsOf(readConfig({ MODELFN_INTRA_OP_THREADS: '1' })).intraOpThreads // 1
 */
export function sessionSettingsOf(config: Pick<RuntimeConfig, 'intraOpThreads' | 'interOpThreads' | 'workers' | 'ortSpinning'>): { intraOpThreads: number; interOpThreads: number; spinning: boolean } {
  return { intraOpThreads: intraOpThreadsFor(config), interOpThreads: config.interOpThreads, spinning: config.ortSpinning };
}
