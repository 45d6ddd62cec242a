/**
 * Declaring a function: the one small file in `functions/<name>/` (optional), and the
 * defaults that make a folder holding only `model.onnx` a complete function. The shape of a
 * declaration is checked by check.ts (zod), apart, so that a bundle whose declaration its build
 * checked starts without loading it.
 */
import type { Context, Hono } from 'hono';
import { parseByteSize, type RuntimeConfig } from '../core/config.ts';
import { createHash } from 'node:crypto';
import { types } from 'node:util';
import type { Model } from '../engine/model.ts';
import type { Split } from './traffic.ts';
import { resolveSplit, type ExampleRequest, type ResolvedScale, type ResolvedVersion, type VersionFolder } from './version.ts';

export type { ExampleRequest, ResolvedScale, ResolvedVersion } from './version.ts';

/** What a function's custom routes can reach. */
export interface FunctionContext {
  /** The resolved declaration. */
  readonly fn: ResolvedFunction;
  /** The loaded model; reading it before the model is ready answers the request with 503. */
  readonly model: Model;
  /**
   * The request's signal: it fires when the client disconnects or the function's timeout passes.
   * Pass it to every model run (`ctx.model.run(feeds, undefined, { signal })`) and stop a loop of
   * runs when it fires: work for a request nobody waits for is dropped before onnxruntime.
   *
   * @example const signal = ctx.signal(c); for (const f of frames) await ctx.model.run(f, undefined, { signal });
   */
  signal(c: Context): AbortSignal;
}

/** Custom Hono routes, mounted under the function's prefix beside the protocol routes. */
export type RoutesHook = (app: Hono, ctx: FunctionContext) => void;

/** A function declaration, as written in `functions/<name>/function.ts`. */
export interface FunctionDeclaration {
  /** Defaults to the folder's name. Lowercase letters, digits and dashes. */
  name?: string;
  /** URL path prefix at the gateway. Defaults to `/<name>`. */
  prefix?: string;
  /** Model file, relative to the function's folder. Defaults to `model.onnx`. */
  model?: string;
  /**
   * Model version reported by the protocol, for a bare `model.onnx`. Defaults to `1`. A function
   * with version folders (`1/model.onnx`, `2/model.onnx`) takes its versions from them.
   */
  version?: string;
  /**
   * How unversioned requests divide between versions, in percent (summing to 100), e.g.
   * `{ '1': 80, '2': 20 }`. Defaults to everything on the highest version. A request carrying the
   * `X-Modelfn-Traffic-Key` header gets the same version for the same key.
   */
  traffic?: Readonly<Record<string, number>>;
  /**
   * Versions that get a copy of that share of the requests (at most 100 in all), e.g.
   * `{ '3': 100 }`: their answers are discarded (the client sees only the serving version's)
   * and counted in their metrics.
   */
  shadow?: Readonly<Record<string, number>>;
  /** Per-version values of the fields that belong to a model, e.g. `{ '2': { labels: [...] } }`. */
  versions?: Readonly<Record<string, VersionDeclaration>>;
  description?: string;
  limits?: {
    /** Request body limit: bytes, or a size such as `512kb` or `10mb`. */
    bodySize?: number | string;
    /**
     * Request timeout in milliseconds: the request's deadline. Work still queued or not yet run
     * when it passes is dropped, and the client gets a 504.
     */
    timeoutMs?: number;
    /**
     * Rows that may wait for the model (a request counts its rows; a model without a batch
     * dimension counts one per request). Beyond it a request is refused at once with 429 and
     * `Retry-After`. Defaults to 1024, whether or not the model batches.
     */
    maxQueue?: number;
    /**
     * The longest a request may expect to wait for the model, in milliseconds: when the work
     * already queued would take longer (at the pace of recent runs), a new request is refused at
     * once with 429 and `Retry-After`, before its body is read. A queue longer than clients wait
     * only runs work for clients that are gone. Defaults to 500; a couple of runs may always wait.
     */
    maxQueueMs?: number;
  };
  batching?: {
    enabled?: boolean;
    maxBatchSize?: number;
    maxDelayMs?: number;
    /** The same as `limits.maxQueue` (kept for declarations written before it); give one of the two. */
    maxQueue?: number;
  };
  /** Replicas (containers) to run. Defaults to 1. */
  replicas?: number;
  /**
   * Scaling with the traffic (Docker Compose: the activator; Kubernetes: Knative). Off by default:
   * the declared replicas run all the time. With several versions, each version scales on its
   * own, with this scale unless `versions` gives it its own.
   */
  scale?: ScaleDeclaration;
  /** API keys: the name of the secret holding them (see runtime/http/auth.ts). Off by default. */
  auth?: { apiKeys: string };
  /** Requests per second per client at the gateway, with a burst allowance. Off by default. */
  rateLimit?: { requestsPerSecond: number; burst?: number };
  /** Class labels, for every output (a list) or per output name. */
  labels?: readonly string[] | Readonly<Record<string, readonly string[]>>;
  /** An example inference request (protocol JSON form), for docs and conformance tests. */
  example?: ExampleRequest;
  routes?: RoutesHook;
  /** Documentation of custom routes for the OpenAPI document and docs pages, keyed `'POST /species'`. */
  routeDocs?: Readonly<Record<string, RouteDoc>>;
}

/**
 * What a version may declare for itself: the fields that belong to its model, and its replicas
 * and `scale` (its own deployment unit), e.g. `{ '1': { scale: { min: 0, idleSeconds: 60 } } }`
 * keeps an old version asleep, ready for an instant rollback.
 */
export type VersionDeclaration = Pick<FunctionDeclaration, 'description' | 'example' | 'labels' | 'batching' | 'limits' | 'replicas' | 'scale'>;

/** How a function scales with its traffic: to zero when idle, and between `min` and `max` under load. */
export interface ScaleDeclaration {
  /** Replicas kept when idle; 0 puts the function to sleep after `idleSeconds` without a request. Defaults to 0. */
  min?: number;
  /** Replicas at most. Defaults to `replicas` (no scaling out). */
  max?: number;
  /** Seconds without a request (and none in flight) before a replica goes to sleep. Defaults to 300. */
  idleSeconds?: number;
  /**
   * How a sleeping replica wakes: `start` (it was stopped: its memory is freed, it wakes in
   * hundreds of milliseconds) or `unpause` (it was frozen: memory kept, it wakes in milliseconds).
   * Defaults to `start`.
   */
  wake?: 'start' | 'unpause';
  /** Requests in flight per replica above which a replica is added. Defaults to the batch size with batching, else 8. */
  concurrency?: number;
}

/** How a custom route appears in the function's OpenAPI document and docs pages. */
export interface RouteDoc {
  summary?: string;
  description?: string;
  /** The request body's media type; `application/json` by default. Another type makes the docs pages offer a file upload. */
  contentType?: string;
  /** An example request body (JSON routes). */
  requestExample?: unknown;
  /** A file in the function's folder that is an example body (file routes): the pages send it in one click. */
  exampleFile?: string;
  /** An example answer. */
  responseExample?: unknown;
  /** Query parameters: name to description. */
  query?: Readonly<Record<string, string>>;
}

/** A declaration with every default filled in. */
export interface ResolvedFunction {
  name: string;
  prefix: string;
  dir: string;
  /** Absolute path of the model file. */
  modelPath: string;
  /** Path of the model relative to the function's folder. */
  modelFile: string;
  /** The declaration file, or undefined for a zero-code function. */
  declarationFile?: string;
  version: string;
  description?: string;
  limits: { bodySize: number; timeoutMs: number; maxQueue: number; maxQueueMs: number };
  batching: { enabled: boolean; maxBatchSize: number; maxDelayMs: number };
  replicas: number;
  /** Undefined when the function does not scale (it runs `replicas` all the time); with versions, the highest one's. */
  scale?: ResolvedScale;
  auth?: { apiKeys: string };
  rateLimit?: { requestsPerSecond: number; burst: number };
  labels: Readonly<Record<string, readonly string[]>>;
  /** Labels for outputs the `labels` map does not name. */
  defaultLabels?: readonly string[];
  example?: ExampleRequest;
  routes?: RoutesHook;
  routeDocs: Readonly<Record<string, RouteDoc>>;
  /** Every version, lowest first; the fields above that belong to a model are the highest one's. */
  versions: readonly ResolvedVersion[];
  /** How unversioned requests divide between versions (traffic.ts chooses by it). */
  traffic: Split;
  /** Versions that get copies of requests (empty when none). */
  shadow: Split;
  /**
   * The digest (declarationSnapshot) of the declaration as it was checked, model docs included,
   * when it came from a function folder (discover.ts): the build passes it to the bundle.
   */
  checkedDigest?: string;
}

/**
 * Declares a function. Returns its argument, typed; the runtime fills in the defaults.
 *
 * @example
 * export default defineFunction({
 *   labels: ['setosa', 'versicolor', 'virginica'],
 *   routes(app, ctx) {
 *     app.get('/hello', (c) => c.json({ inputs: ctx.model.inputs.length }));
 *   },
 * });
 */
export function defineFunction(declaration: FunctionDeclaration): FunctionDeclaration {
  return declaration;
}

export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
export const PREFIX_PATTERN = /^(\/[a-zA-Z0-9._~-]+)+$/;

/** Most replicas a function may declare or scale to. */
export const MAX_REPLICAS = 64;
/** Default rows that may wait for a model (limits.maxQueue). */
export const DEFAULT_MAX_QUEUE = 1024;
/** Default longest expected wait for the model, in ms (limits.maxQueueMs). */
export const DEFAULT_MAX_QUEUE_MS = 500;
/** Default seconds without a request before a scaled function sleeps. */
export const DEFAULT_IDLE_SECONDS = 300;

/** A declaration that cannot be used; `file` and the message say where and what. */
export class DeclarationError extends Error {
  override name = 'DeclarationError';
  constructor(readonly file: string, readonly problem: string) {
    super(`${file}: ${problem}`);
  }
}

/**
 * Fills in a checked declaration's defaults (check.ts checks its shape) and checks what its
 * fields say together. Throws DeclarationError naming the first problem.
 */
export function completeDeclaration(
  declaration: FunctionDeclaration | undefined,
  where: { dir: string; folderName: string; declarationFile?: string; versions?: readonly VersionFolder[] },
  config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>,
): ResolvedFunction {
  const file = where.declarationFile ?? where.dir;
  const d = declaration ?? {};
  const name = d.name ?? where.folderName;
  if (!NAME_PATTERN.test(name)) {
    throw new DeclarationError(file, `the folder name '${name}' is not a valid function name (lowercase letters, digits and dashes, starting with a letter); rename it or set 'name'`);
  }
  if (d.limits?.maxQueue !== undefined && d.batching?.maxQueue !== undefined) {
    throw new DeclarationError(file, 'batching.maxQueue: the queue is limits.maxQueue now; give only that one');
  }
  const replicas = d.replicas ?? Math.max(1, d.scale?.min ?? 1);
  // The function's own replicas and scale agree, whatever its versions declare.
  if (d.scale) resolveScale(d.scale, replicas, d.replicas !== undefined, file, { scale: 'scale', replicas: 'replicas' });
  const folders = where.versions ?? [];
  if (folders.length) {
    const list = folders.map((f) => `${f.version}/`).join(', ');
    for (const field of ['model', 'version'] as const) {
      if (d[field] !== undefined) throw new DeclarationError(file, `${field}: the versions come from the folders ${list}; remove '${field}'`);
    }
  }
  const found: readonly VersionFolder[] = folders.length ? folders : [{ version: d.version ?? '1', modelFile: d.model ?? 'model.onnx', docs: {} }];
  const names = found.map((f) => f.version);
  for (const version of Object.keys(d.versions ?? {})) {
    if (!names.includes(version)) throw new DeclarationError(file, `versions.${version}: no version '${version}' (versions: ${names.join(', ')})`);
  }
  const versions = found.map((f) => resolveVersion(f, d, where.dir, config, replicas, file));
  const traffic = d.traffic ? resolveSplit('traffic', d.traffic, names) : [{ version: names[names.length - 1], percent: 100 }];
  if (typeof traffic === 'string') throw new DeclarationError(file, traffic);
  const shadow = resolveSplit('shadow', d.shadow ?? {}, names);
  if (typeof shadow === 'string') throw new DeclarationError(file, shadow);
  const serving = shadow.find((s) => s.percent > 0 && traffic.some((t) => t.version === s.version && t.percent > 0));
  if (serving) throw new DeclarationError(file, `shadow.${serving.version}: version ${serving.version} also serves traffic; a shadow only gets copies of requests`);
  // The function's own model fields are its highest version's: what a bare function has always had.
  const top = versions[versions.length - 1];
  return {
    name,
    prefix: d.prefix ?? `/${name}`,
    dir: where.dir,
    modelFile: top.modelFile,
    modelPath: top.modelPath,
    declarationFile: where.declarationFile,
    version: top.version,
    description: d.description ?? top.description,
    limits: top.limits,
    batching: top.batching,
    replicas: top.replicas,
    scale: top.scale,
    auth: d.auth,
    rateLimit: d.rateLimit && { requestsPerSecond: d.rateLimit.requestsPerSecond, burst: d.rateLimit.burst ?? Math.ceil(d.rateLimit.requestsPerSecond) },
    labels: top.labels,
    defaultLabels: top.defaultLabels,
    example: top.example,
    routes: d.routes,
    routeDocs: { ...d.routeDocs },
    versions,
    traffic,
    shadow,
  };
}

/**
 * One version's model fields: what the declaration's `versions` says for it, else the
 * function's declaration, else what the version's model documents itself, else the defaults.
 */
function resolveVersion(found: VersionFolder, d: FunctionDeclaration, dir: string, config: Pick<RuntimeConfig, 'bodyLimit' | 'timeoutMs'>, functionReplicas: number, file: string): ResolvedVersion {
  const own = d.versions?.[found.version] ?? {};
  const limits = own.limits ?? d.limits;
  const batching = own.batching ?? d.batching;
  const labels = own.labels ?? d.labels;
  // Its own scale, else the function's. With a scale of its own it starts its own `min` (at
  // least 1) unless it declares replicas; with the function's, the function's replicas.
  const scaleDeclared = own.scale ?? d.scale;
  const replicasDeclared = own.replicas ?? (own.scale ? undefined : d.replicas);
  const replicas = replicasDeclared ?? (own.scale ? Math.max(1, own.scale.min ?? 1) : functionReplicas);
  const fields = { scale: own.scale ? `versions.${found.version}.scale` : 'scale', replicas: own.replicas !== undefined ? `versions.${found.version}.replicas` : 'replicas' };
  const scale = scaleDeclared && resolveScale(scaleDeclared, replicas, replicasDeclared !== undefined, file, fields);
  return {
    version: found.version,
    modelFile: found.modelFile,
    modelPath: `${dir}/${found.modelFile}`,
    replicas,
    scale: scale && {
      ...scale,
      concurrency: scaleDeclared.concurrency ?? ((batching?.enabled ?? true) ? (batching?.maxBatchSize ?? 32) : 8),
    },
    description: own.description ?? found.docs.description,
    example: own.example ?? d.example ?? (found.docs.example as ExampleRequest | undefined),
    labels: Array.isArray(labels) ? {} : { ...(labels as Record<string, readonly string[]> | undefined) },
    defaultLabels: Array.isArray(labels) ? (labels as readonly string[]) : undefined,
    limits: {
      bodySize: parseByteSize(limits?.bodySize ?? config.bodyLimit)!,
      timeoutMs: limits?.timeoutMs ?? config.timeoutMs,
      maxQueue: limits?.maxQueue ?? batching?.maxQueue ?? DEFAULT_MAX_QUEUE,
      maxQueueMs: limits?.maxQueueMs ?? DEFAULT_MAX_QUEUE_MS,
    },
    batching: {
      // On by default: it only takes effect when the model has a batch dimension, and a lone
      // request never waits for it.
      enabled: batching?.enabled ?? true,
      maxBatchSize: batching?.maxBatchSize ?? 32,
      maxDelayMs: batching?.maxDelayMs ?? 2,
    },
  };
}

/**
 * Checks that `scale` and `replicas` agree (`min <= replicas <= max`) and fills in the defaults.
 * `replicas` is what `up` starts; `min` what stays when idle; `max` the most the load may bring.
 */
function resolveScale(scale: ScaleDeclaration, replicas: number, replicasDeclared: boolean, file: string, field: { scale: string; replicas: string }): Omit<ResolvedScale, 'concurrency'> {
  const min = scale.min ?? 0;
  const max = scale.max ?? Math.max(replicas, min, 1);
  if (min > max) throw new DeclarationError(file, `${field.scale}.min: must be at most ${field.scale}.max (${max}), got ${min}`);
  if (replicasDeclared && replicas < min) throw new DeclarationError(file, `${field.replicas}: must be at least ${field.scale}.min (${min}), got ${replicas}`);
  if (replicas > max) throw new DeclarationError(file, `${field.scale}.max: must be at least ${field.replicas} (${replicas}), got ${max}`);
  return { min, max, idleSeconds: scale.idleSeconds ?? DEFAULT_IDLE_SECONDS, wake: scale.wake ?? 'start' };
}

/** A declaration's data copied once, and the digest of that copy. */
export interface DeclarationSnapshot {
  /** The copy: fresh plain objects and arrays, the same functions. */
  data: unknown;
  /** sha-256 of the copy's every type, key, order and value. */
  digest: string;
}

/**
 * Copies a declaration's data and digests the copy: the build records the digest of the one it
 * checked, and a bundle that finds the same digest at start does not check it again
 * (runtime/function/discover.ts). What is digested, checked and used is the one copy, read once.
 * Undefined for anything but plain data (plain objects of enumerable data properties, arrays
 * without holes, strings, numbers, booleans, null, undefined) and functions, or nested deeper
 * than 64: getters, proxies, class instances and symbol keys always get checked.
 *
 * @example declarationSnapshot({ replicas: 2 })!.digest === declarationSnapshot({ replicas: 2 })!.digest // true
 */
export function declarationSnapshot(declaration: unknown): DeclarationSnapshot | undefined {
  const copied = plainCopy(declaration, 0);
  return copied && { data: copied.copy, digest: createHash('sha256').update(copied.text).digest('hex') };
}

/** One value copied, and as text that differs whenever a check of it could: types, keys, order, numbers. */
function plainCopy(value: unknown, depth: number): { copy: unknown; text: string } | undefined {
  if (depth > 64) return undefined;
  switch (typeof value) {
    case 'undefined': return { copy: value, text: 'u' };
    case 'boolean': return { copy: value, text: value ? 't' : 'f' };
    case 'number': return { copy: value, text: `n${String(value)}` };
    case 'string': return { copy: value, text: JSON.stringify(value) };
    case 'function': return { copy: value, text: 'F' };
    case 'object': {
      if (value === null) return { copy: value, text: 'z' };
      if (types.isProxy(value)) return undefined;
      const proto = Object.getPrototypeOf(value) as unknown;
      const isArray = Array.isArray(value) && proto === Array.prototype;
      if (!isArray && proto !== Object.prototype && proto !== null) return undefined;
      const keys = Reflect.ownKeys(value);
      // An array's own keys are its indexes and `length`: anything else (holes, extra keys) is checked.
      if (isArray && keys.length !== (value as unknown[]).length + 1) return undefined;
      const copy: unknown[] | Record<string, unknown> = isArray ? [] : {};
      const parts: string[] = [];
      for (const key of keys) {
        if (isArray && key === 'length') continue;
        if (typeof key === 'symbol') return undefined;
        const property = Object.getOwnPropertyDescriptor(value, key)!;
        if (!property.enumerable || !('value' in property)) return undefined;
        const item = plainCopy(property.value, depth + 1);
        if (item === undefined) return undefined;
        // defineProperty, not assignment: a key named __proto__ stays a key.
        Object.defineProperty(copy, key, { value: item.copy, enumerable: true, writable: true, configurable: true });
        parts.push(isArray ? item.text : `${JSON.stringify(key)}:${item.text}`);
      }
      return { copy, text: isArray ? `[${parts.join(',')}]` : `{${parts.join(',')}}` };
    }
    default: return undefined;
  }
}
