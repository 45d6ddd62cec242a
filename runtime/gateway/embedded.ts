/**
 * Embedded mode: every function in one process on one port, routed exactly as the nginx
 * gateway routes them (runtime/gateway/routes.ts), without Docker. A function that fails to load
 * answers 503 JSON; the others serve. Function folders added or removed while it runs are served
 * or forgotten; a failed function is retried when its folder changes; in watch mode (npm run
 * dev) every function reloads when its files change. A function with several versions loads each
 * behind its own app, and each request goes where the gateway's nginx would send it
 * (runtime/function/traffic.ts routeRequest): the same split, the same traffic key hashing, the
 * versioned paths, and a copy to the shadow.
 */
import { existsSync, watch, type FSWatcher } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { getPath } from 'hono/utils/url';
import { createFunctionApp } from '../http/app.ts';
import type { RuntimeConfig } from '../core/config.ts';
import type { ResolvedFunction } from '../function/define.ts';
import { listFunctionDirs, loadFunctionDir } from '../function/discover.ts';
import { assertValidFunctionSet, functionSetProblems } from '../function/validate.ts';
import { routeRequest, TRAFFIC_KEY_HEADER } from '../function/traffic.ts';
import { atVersion } from '../function/version.ts';
import { errorResponse } from '../http/errors.ts';
import { SERVER_METADATA, forwardedPath, functionIndex, gatewayRoutes, matchRoute, noRoute, unknownModel, type GatewayRoute } from './routes.ts';
import { FunctionHost } from '../function/host.ts';
import type { Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Model } from '../engine/model.ts';
import { compressResponse } from '../http/response-compression.ts';
import { answerClientErrorsAsJson, loadFunctionModel } from '../serve/server.ts';
import { shedWhenBehind } from '../serve/shed.ts';
import { warmUp } from '../serve/warmup.ts';
import { emptyWindow, summarize, versionedStats, type FunctionStats } from '../core/stats.ts';
import { VERSION } from '../core/version.ts';
import { cardOf, describeHost, type DescribedFunction } from '../pages/describe.ts';
import { functionEntry } from '../pages/entry.ts';
import type { CustomRoute } from '../pages/openapi.ts';
import { failedDocsPage, gatewayPage, wantsHtml } from '../pages/ui.ts';

/** One version of a function, served: its app and model, or why the model did not load. */
interface ServedVersion {
  app: Hono;
  host: FunctionHost;
  model?: Model;
  failure?: string;
  close: () => void;
}

/** One function slot: its app, or why it could not load. */
interface Slot {
  dir: string;
  fn: Pick<ResolvedFunction, 'name' | 'prefix' | 'replicas' | 'description'>;
  app?: Hono;
  host?: FunctionHost;
  model?: Model;
  routes: CustomRoute[];
  failure?: string;
  close?: () => void;
  /** Requests handed to its app and not answered yet: a reload waits for them before releasing the model. */
  inFlight?: number;
  /** Called when inFlight drops to zero. */
  drained?: () => void;
  /** Every version by name (app, host and model above are the highest one's). */
  versions?: Map<string, ServedVersion>;
}

export interface EmbeddedOptions {
  functionsDir: string;
  config: RuntimeConfig;
  logger: Logger;
  /** Reload a function when its files change (npm run dev). Folders added or removed are followed either way. */
  watch?: boolean;
}

export interface EmbeddedServer {
  url: string;
  port: number;
  /** The gateway app (for in-process tests). */
  app: Hono;
  slots: () => readonly Slot[];
  /** Reloads one function folder (what watch mode calls on a change). */
  reload(dir: string): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * A failure as clients may read it: paths relative to the folder that holds the functions'
 * folder (`functions/iris/model.onnx`), never the machine's absolute paths. The log keeps them whole.
 */
function shownFailure(message: string, dir: string): string {
  return message.split(`${dirname(dirname(dir))}${sep}`).join('');
}

/** A function folder read (declaration resolved), or why it could not be. */
type Resolved = { dir: string; fn: ResolvedFunction; failure?: undefined } | { dir: string; fn: Slot['fn']; routes: CustomRoute[]; failure: string };

/** Reads one function folder; a failure becomes a slot that answers 503. */
async function resolveSlot(dir: string, config: RuntimeConfig, logger: Logger, fresh: boolean): Promise<Resolved> {
  const folder = basename(dir);
  try {
    return { dir, fn: await loadFunctionDir(dir, config, fresh) };
  } catch (err) {
    const failure = (err as Error).message;
    logger.log('error', 'function failed to load', { fn: folder, error: failure });
    return { dir, fn: { name: folder, prefix: `/${folder}`, replicas: 1 }, routes: [], failure: shownFailure(failure, dir) };
  }
}

/** Loads one version's model behind its own app; a failure leaves the app answering 503. */
async function loadVersion(fn: ResolvedFunction, dir: string, config: RuntimeConfig, logger: Logger): Promise<ServedVersion & { routes: CustomRoute[] }> {
  const host = new FunctionHost(fn);
  // A function with several versions labels each one's series with its version.
  const metrics = createMetrics(fn.versions.length > 1 ? { version: fn.version } : {});
  const { app, customRoutes, close } = createFunctionApp(host, { config, logger, metrics, stripPrefix: fn.prefix });
  const version = fn.versions.length > 1 ? { version: fn.version } : {};
  try {
    const model = await loadFunctionModel(host, config, metrics, logger);
    // As a container does: the first request is not the slow one, and the docs get their example answers.
    const warm = config.warmUp ? await warmUp(host, config.maxElements) : undefined;
    if (warm?.error) logger.log('warn', 'warm-up inference failed; serving anyway', { fn: fn.name, ...version, error: warm.error });
    logger.log('info', 'function loaded', { fn: fn.name, ...version, prefix: fn.prefix, load_ms: Math.round(model.loadMs * 10) / 10, ...(warm ? { warm_up_ms: Math.round(warm.ms * 10) / 10 } : {}) });
    return { app, host, model, routes: customRoutes, close };
  } catch (err) {
    const failure = (err as Error).message;
    host.setFailed(shownFailure(failure, dir));
    logger.log('error', 'function failed to load', { fn: fn.name, ...version, error: failure });
    return { app, host, routes: customRoutes, failure: shownFailure(failure, dir), close };
  }
}

/**
 * Loads every version of a resolved function, each behind its own app; the slot shows the
 * highest. Failures become a slot (or a version) that answers 503.
 */
async function loadSlot(resolved: Resolved, config: RuntimeConfig, logger: Logger): Promise<Slot> {
  if (resolved.failure !== undefined) return resolved;
  const { dir, fn } = resolved;
  const versions = new Map<string, ServedVersion>();
  let top: Awaited<ReturnType<typeof loadVersion>> | undefined;
  for (const { version } of fn.versions) {
    top = await loadVersion(fn.versions.length > 1 ? atVersion(fn, version) : fn, dir, config, logger);
    versions.set(version, top);
  }
  const { app, host, model, routes, failure } = top!;
  return { dir, fn, app, host, model, routes, failure, versions, close: () => { for (const v of versions.values()) v.close(); } };
}

/** What the gateway shows of a slot. */
function describeSlot(slot: Slot): DescribedFunction {
  if (slot.host) return describeHost(slot.host, slot.routes, true);
  return { ...(slot.fn as ResolvedFunction), ownRoutes: slot.routes, error: `function '${slot.fn.name}' failed to load: ${slot.failure}` };
}

/**
 * A slot's live figures: its app's /stats, or its failure; a refusal (its figures need an API
 * key, and `headers` carry none that fits) is the app's answer. A function with several versions
 * has each version's app asked, as each version's service is behind the gateway, with the split
 * in force here: the declared one.
 */
async function slotStats(slot: Slot, headers?: Record<string, string>): Promise<FunctionStats | Response> {
  if (!slot.app) return summarize(slot.fn.name, 'failed', emptyWindow(), slot.fn.replicas, 0, slot.failure);
  const apps = slot.versions && slot.versions.size > 1 ? [...slot.versions.values()].map((v) => v.app) : [slot.app];
  const answers: FunctionStats[] = [];
  for (const res of await Promise.all(apps.map((app) => app.request(`${slot.fn.prefix}/stats`, { headers })))) {
    if (!res.ok) return res;
    answers.push((await res.json()) as FunctionStats);
  }
  if (apps.length === 1) return answers[0];
  const fn = slot.fn as ResolvedFunction;
  return versionedStats(fn.name, fn.versions.map((v) => v.version), answers, { traffic: fn.traffic, shadow: fn.shadow });
}

/** A slot's figures for its card, none when they need an API key. */
const cardStats = async (slot: Slot) => {
  const stats = await slotStats(slot);
  return stats instanceof Response ? undefined : stats;
};

/**
 * Serves every function under `functionsDir` on one port.
 *
 * @example const server = await startEmbedded({ functionsDir: 'functions', config, logger });
 */
export async function startEmbedded(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const { config, logger } = options;
  const root = resolve(options.functionsDir);
  const resolved: Resolved[] = [];
  for (const dir of listFunctionDirs(root)) resolved.push(await resolveSlot(dir, config, logger, false));
  // Colliding names or prefixes would silently hide a function: refuse to start, naming every problem.
  assertValidFunctionSet(resolved.flatMap((r) => (r.failure === undefined ? [r.fn] : [])));
  let slots: Slot[] = [];
  for (const r of resolved) slots.push(await loadSlot(r, config, logger));
  let routes: GatewayRoute[] = [];
  let bySlot = new Map<string, Slot>();
  const reindex = () => {
    slots.sort((a, b) => a.fn.name.localeCompare(b.fn.name));
    routes = gatewayRoutes(slots.map((s) => s.fn));
    bySlot = new Map(slots.map((s) => [s.fn.name, s]));
  };
  reindex();

  const gateway = new Hono();
  // The paths the gateway answers itself, whatever the functions' routes (below).
  const GATEWAY_PATHS = new Set(['/', '/v2', '/v2/health/live', '/v2/health/ready']);
  gateway.get('/', compressResponse(), async (c) => {
    c.header('Vary', 'Accept');
    if (!wantsHtml(c.req.header('accept'))) return c.json(functionIndex(slots.map(describeSlot)));
    const cards = await Promise.all(slots.map(async (s) => cardOf(describeSlot(s), await cardStats(s))));
    return c.html(gatewayPage(cards, VERSION));
  });
  gateway.get('/v2', (c) => c.json(SERVER_METADATA));
  gateway.get('/v2/health/live', (c) => c.json({ live: true }));
  gateway.get('/v2/health/ready', (c) => c.json({ ready: true }));
  gateway.all('*', async (c) => {
    const path = c.req.path;
    const route = matchRoute(routes, path);
    if (!route) {
      const model = /^\/v2\/models\/([A-Za-z0-9._-]+)(\/|$)/.exec(path);
      return errorResponse(c, 404, model ? unknownModel(model[1]) : noRoute(slots.map((s) => s.fn.prefix)));
    }
    if (route.kind === 'redirect') {
      const url = new URL(c.req.url);
      return c.redirect(`${route.path}/${url.search}`, 308);
    }
    const slot = bySlot.get(route.fn);
    if (!slot?.app) {
      // A function whose declaration failed still has its docs page and its live figures: the reason.
      const own = slot && forwardedPath(route, path).replace(/(.)\/$/, '$1');
      if (slot && own === '/docs') return c.html(failedDocsPage(slot.fn, describeSlot(slot).error!, [], slot.fn.prefix), 503);
      if (slot && own === '/stats') return c.json(await cardStats(slot));
      // Its root: its entry of GET /, the reason included, as a function whose model failed answers it.
      if (slot && own === '/' && !wantsHtml(c.req.header('accept'))) return c.json({ ...functionEntry(describeSlot(slot)), state: 'failed' }, 503);
      return errorResponse(c, 503, `function '${route.fn}' failed to load: ${slot?.failure ?? 'unknown'}`);
    }
    // Every version's figures, as the gateway's nginx has one version gather them.
    if (route.kind === 'stats') {
      // The client's API key alone (its Accept-Encoding would have the apps answer compressed).
      const key = c.req.header('authorization');
      const stats = await slotStats(slot, key === undefined ? undefined : { authorization: key });
      return stats instanceof Response ? stats : c.json(stats);
    }
    return forward(slot, c.req.raw, c.env);
  });

  // The function's app strips its own prefix (createFunctionApp's stripPrefix): the request
  // goes through untouched, body stream and all. Rebuilding it cost over half the throughput.
  const forward = async (slot: Slot, req: Request, env: unknown): Promise<Response> => {
    let app = slot.app!;
    if (slot.versions && slot.versions.size > 1) {
      // The version that answers, and the one that gets a copy, as the gateway's nginx decides them.
      const fn = slot.fn as ResolvedFunction;
      const route = routeRequest(fn, getPath(req), req.headers.get(TRAFFIC_KEY_HEADER) ?? undefined);
      app = slot.versions.get(route.serve)?.app ?? app;
      const shadow = route.shadow && slot.versions.get(route.shadow);
      if (shadow) mirror(slot, shadow.app, req.clone(), env);
    }
    slot.inFlight = (slot.inFlight ?? 0) + 1;
    try {
      return await app.fetch(req, env);
    } finally {
      if (--slot.inFlight === 0) slot.drained?.();
    }
  };
  /**
   * Sends a copy of a request to a shadow version: its answer is read and dropped (its metrics
   * count it), never awaited by the client, and its failures are its own.
   */
  const mirror = (slot: Slot, app: Hono, copy: Request, env: unknown) => {
    slot.inFlight = (slot.inFlight ?? 0) + 1;
    void (async () => {
      try {
        const res = await app.fetch(copy, env);
        await res.arrayBuffer();
      } catch (err) {
        logger.log('warn', 'shadow request failed', { fn: slot.fn.name, error: (err as Error).message });
      } finally {
        if (--slot.inFlight! === 0) slot.drained?.();
      }
    })();
  };
  // A request for a loaded function goes straight to its app: the gateway's own Hono dispatch
  // (a context, a router match, a middleware chain) is for its own routes and what no function
  // answers (issue 22).
  const fetchGateway = (req: Request, env?: unknown): Response | Promise<Response> => {
    const path = getPath(req);
    if (!GATEWAY_PATHS.has(path)) {
      const route = matchRoute(routes, path);
      const slot = route && route.kind !== 'redirect' && route.kind !== 'stats' ? bySlot.get(route.fn) : undefined;
      if (slot?.app) return forward(slot, req, env);
    }
    return gateway.fetch(req, env);
  };

  /**
   * Frees a slot that no longer receives requests, once the requests it has are answered (a
   * reload under load fails none), or after the function's timeout at the latest.
   */
  const release = async (slot: Slot | undefined) => {
    if (!slot) return;
    if (slot.inFlight) {
      const limit = slot.host?.fn.limits.timeoutMs ?? config.shutdownTimeoutMs;
      await new Promise<void>((done) => {
        const timer = setTimeout(done, limit);
        slot.drained = () => {
          clearTimeout(timer);
          done();
        };
      });
    }
    slot.close?.();
    for (const v of slot.versions?.values() ?? []) if (v.model && v.model !== slot.model) await v.model.release().catch(() => {});
    if (slot.model) await slot.model.release().catch(() => {});
  };
  const reload = async (dir: string) => {
    const old = slots.find((s) => s.dir === dir);
    let candidate = await resolveSlot(dir, config, logger, true);
    if (candidate.failure === undefined) {
      const others = slots.filter((s) => s.dir !== dir && s.host).map((s) => s.fn as ResolvedFunction);
      const problems = functionSetProblems([...others, candidate.fn]);
      if (problems.length) {
        logger.log('error', 'function failed to load', { fn: candidate.fn.name, error: problems.join('; ') });
        candidate = { dir, fn: candidate.fn, routes: [], failure: problems.join('; ') };
      }
    }
    const next = await loadSlot(candidate, config, logger);
    // The slots may have changed while it loaded: replace the old one where it is now.
    const at = old ? slots.indexOf(old) : -1;
    if (at >= 0) slots[at] = next;
    else slots.push(next);
    reindex();
    await release(old);
    logger.log('info', old ? 'function reloaded' : 'function added', { fn: next.fn.name, ok: !next.failure });
  };
  const remove = async (dir: string) => {
    const old = slots.find((s) => s.dir === dir);
    if (!old) return;
    slots = slots.filter((s) => s !== old);
    reindex();
    await release(old);
    logger.log('info', 'function removed', { fn: old.fn.name });
  };
  // Changes of one folder are handled one after the other, never two loads of it at once.
  const queues = new Map<string, Promise<void>>();
  const folderChanged = (dir: string) => {
    const run = async () => {
      const isFunction = listFunctionDirs(root).includes(dir);
      const slot = slots.find((s) => s.dir === dir);
      if (!isFunction) await remove(dir);
      // npm start follows folders added and removed, and retries a function that failed;
      // npm run dev also reloads a working function when its files change.
      else if (!slot || slot.failure || options.watch) await reload(dir);
    };
    const next = (queues.get(dir) ?? Promise.resolve()).then(run, run).catch((err) => logger.log('error', 'reload failed', { dir, error: (err as Error).message }));
    queues.set(dir, next);
  };

  const server = await new Promise<Server>((done, reject) => {
    const s = serve({ fetch: fetchGateway, port: config.port, hostname: config.host }, () => done(s as Server)) as Server;
    s.once('error', reject);
  });
  const stopShedding = shedWhenBehind(server, {
    lagMs: config.shedLagMs,
    report: (refused) => logger.log('warn', 'the server is behind: requests refused before their body was read', { refused, lag_ms: config.shedLagMs }),
  });
  answerClientErrorsAsJson(server);
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host}:${port}`;
  logger.log('info', 'listening', { mode: 'embedded', host: config.host, port, functions: slots.map((s) => s.fn.name) });

  const pending = new Map<string, NodeJS.Timeout>();
  const watcher: FSWatcher | undefined = existsSync(root) ? watch(root, { recursive: true }, (_event, file) => {
    if (!file) return;
    const folder = String(file).split(sep)[0];
    if (!folder || folder.startsWith('.') || folder.startsWith('_')) return;
    const dir = join(root, folder);
    // Editors and `modelfn new` write in bursts: act once things settle.
    clearTimeout(pending.get(dir));
    pending.set(dir, setTimeout(() => {
      pending.delete(dir);
      logger.log('info', 'change detected', { fn: folder, file: relative(root, join(root, String(file))) });
      folderChanged(dir);
    }, 150));
  }) : undefined;

  return {
    url,
    port,
    app: gateway,
    slots: () => slots,
    reload,
    async shutdown() {
      watcher?.close();
      for (const timer of pending.values()) clearTimeout(timer);
      for (const slot of slots) for (const host of slot.versions ? [...slot.versions.values()].map((v) => v.host) : [slot.host]) if (host) host.state = 'draining';
      await new Promise<void>((done) => {
        const idle = setInterval(() => server.closeIdleConnections(), 50);
        const timer = setTimeout(() => server.closeAllConnections(), config.shutdownTimeoutMs);
        server.close(() => {
          clearInterval(idle);
          clearTimeout(timer);
          done();
        });
        server.closeIdleConnections();
      });
      stopShedding();
      for (const slot of slots) await release(slot);
    },
  };
}
