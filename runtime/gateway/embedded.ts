/**
 * Embedded mode: every function in one process on one port, routed exactly as the nginx
 * gateway routes them (runtime/gateway/routes.ts), without Docker. A function that fails to load
 * answers 503 JSON; the others serve. In watch mode a function reloads when its files change.
 */
import { watch, type FSWatcher } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, relative, resolve, sep } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { createFunctionApp } from '../http/app.ts';
import type { RuntimeConfig } from '../core/config.ts';
import type { ResolvedFunction } from '../function/define.ts';
import { listFunctionDirs, loadFunctionDir } from '../function/discover.ts';
import { assertValidFunctionSet, functionSetProblems } from '../function/validate.ts';
import { errorResponse } from '../http/errors.ts';
import { GATEWAY_ERRORS, SERVER_METADATA, functionIndex, gatewayRoutes, matchRoute, unknownModel, type GatewayRoute } from './routes.ts';
import { FunctionHost } from '../function/host.ts';
import type { Logger } from '../core/log.ts';
import { createMetrics } from '../core/metrics.ts';
import type { Model } from '../engine/model.ts';
import { answerClientErrorsAsJson, loadFunctionModel } from '../serve/server.ts';
import { gatewayPage, wantsHtml } from '../pages/ui.ts';

/** One function slot: its app, or why it could not load. */
interface Slot {
  dir: string;
  fn: Pick<ResolvedFunction, 'name' | 'prefix' | 'replicas' | 'description'>;
  app?: Hono;
  host?: FunctionHost;
  model?: Model;
  failure?: string;
}

export interface EmbeddedOptions {
  functionsDir: string;
  config: RuntimeConfig;
  logger: Logger;
  /** Reload a function when its files change. */
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

/** A function folder read (declaration resolved), or why it could not be. */
type Resolved = { dir: string; fn: ResolvedFunction; failure?: undefined } | { dir: string; fn: Slot['fn']; failure: string };

/** Reads one function folder; a failure becomes a slot that answers 503. */
async function resolveSlot(dir: string, config: RuntimeConfig, logger: Logger, fresh: boolean): Promise<Resolved> {
  const folder = basename(dir);
  try {
    return { dir, fn: await loadFunctionDir(dir, config, fresh) };
  } catch (err) {
    const failure = (err as Error).message;
    logger.log('error', 'function failed to load', { fn: folder, error: failure });
    return { dir, fn: { name: folder, prefix: `/${folder}`, replicas: 1 }, failure };
  }
}

/** Loads the model of a resolved function; failures become a slot that answers 503. */
async function loadSlot(resolved: Resolved, config: RuntimeConfig, logger: Logger): Promise<Slot> {
  if (resolved.failure !== undefined) return resolved;
  const { dir, fn } = resolved;
  const host = new FunctionHost(fn);
  const metrics = createMetrics();
  const { app } = createFunctionApp(host, { config, logger, metrics, stripPrefix: fn.prefix });
  try {
    const model = await loadFunctionModel(host, config, metrics, logger);
    logger.log('info', 'function loaded', { fn: fn.name, prefix: fn.prefix, load_ms: Math.round(model.loadMs * 10) / 10 });
    return { dir, fn, app, host, model };
  } catch (err) {
    const failure = (err as Error).message;
    host.setFailed(failure);
    logger.log('error', 'function failed to load', { fn: fn.name, error: failure });
    return { dir, fn, app, host, failure };
  }
}

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
  const slots: Slot[] = [];
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
  gateway.get('/', (c) => {
    c.header('Vary', 'Accept');
    return wantsHtml(c.req.header('accept')) ? c.html(gatewayPage()) : c.json(functionIndex(slots.map((s) => s.fn)));
  });
  gateway.get('/v2', (c) => c.json(SERVER_METADATA));
  gateway.get('/v2/health/live', (c) => c.json({ live: true }));
  gateway.get('/v2/health/ready', (c) => c.json({ ready: true }));
  gateway.all('*', async (c) => {
    const path = c.req.path;
    const route = matchRoute(routes, path);
    if (!route) {
      const model = /^\/v2\/models\/([A-Za-z0-9._-]+)(\/|$)/.exec(path);
      return errorResponse(c, 404, model ? unknownModel(model[1]) : GATEWAY_ERRORS[404]);
    }
    if (route.kind === 'redirect') {
      const url = new URL(c.req.url);
      return c.redirect(`${route.path}/${url.search}`, 308);
    }
    const slot = bySlot.get(route.fn);
    if (!slot?.app) return errorResponse(c, 503, `function '${route.fn}' failed to load: ${slot?.failure ?? 'unknown'}`);
    // The function's app strips its own prefix (createFunctionApp's stripPrefix): the request
    // goes through untouched, body stream and all. Rebuilding it cost over half the throughput.
    return slot.app.fetch(c.req.raw, c.env);
  });

  const reload = async (dir: string) => {
    const index = slots.findIndex((s) => s.dir === dir);
    const old = index >= 0 ? slots[index] : undefined;
    let candidate = await resolveSlot(dir, config, logger, true);
    if (candidate.failure === undefined) {
      const others = slots.filter((s) => s.dir !== dir && s.host).map((s) => s.fn as ResolvedFunction);
      const problems = functionSetProblems([...others, candidate.fn]);
      if (problems.length) {
        logger.log('error', 'function failed to load', { fn: candidate.fn.name, error: problems.join('; ') });
        candidate = { dir, fn: candidate.fn, failure: problems.join('; ') };
      }
    }
    const next = await loadSlot(candidate, config, logger);
    if (index >= 0) slots[index] = next;
    else slots.push(next);
    reindex();
    if (old?.model) await old.model.release().catch(() => {});
    logger.log('info', 'function reloaded', { fn: next.fn.name, ok: !next.failure });
  };

  const server = await new Promise<Server>((done, reject) => {
    const s = serve({ fetch: gateway.fetch, port: config.port, hostname: config.host }, () => done(s as Server)) as Server;
    s.once('error', reject);
  });
  answerClientErrorsAsJson(server);
  const port = (server.address() as AddressInfo).port;
  const url = `http://${config.host}:${port}`;
  logger.log('info', 'listening', { mode: 'embedded', host: config.host, port, functions: slots.map((s) => s.fn.name) });

  let watcher: FSWatcher | undefined;
  if (options.watch) {
    const pending = new Map<string, NodeJS.Timeout>();
    watcher = watch(root, { recursive: true }, (_event, file) => {
      if (!file) return;
      const folder = String(file).split(sep)[0];
      if (!folder || folder.startsWith('.')) return;
      const dir = join(root, folder);
      // Editors write in bursts: reload once things settle.
      clearTimeout(pending.get(dir));
      pending.set(dir, setTimeout(() => {
        pending.delete(dir);
        logger.log('info', 'change detected', { fn: folder, file: relative(root, join(root, String(file))) });
        void reload(dir);
      }, 150));
    });
  }

  return {
    url,
    port,
    app: gateway,
    slots: () => slots,
    reload,
    async shutdown() {
      watcher?.close();
      for (const slot of slots) if (slot.host) slot.host.state = 'draining';
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
      for (const slot of slots) await slot.model?.release().catch(() => {});
    },
  };
}
