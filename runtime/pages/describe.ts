/**
 * A function as the gateway presents it: its entry in `GET /` (which routes work) and its card
 * on the gateway page (its OpenAPI document). Embedded mode describes the functions it serves;
 * the build describes them from their models for nginx's static list and page.
 */
import { Hono } from 'hono';
import type { FunctionStats } from '../core/stats.ts';
import { loadModel, ModelLoadError } from '../engine/model.ts';
import type { ResolvedFunction } from '../function/define.ts';
import { FunctionHost } from '../function/host.ts';
import { ownRoutes } from './docs.ts';
import type { FunctionSummary } from './entry.ts';
import { modelFacts } from './facts.ts';
import { openApiDocument, type CustomRoute } from './openapi.ts';
import type { FunctionCard } from './ui.ts';

export interface DescribedFunction extends ResolvedFunction, Omit<FunctionSummary, 'versions' | 'traffic' | 'shadow'> {
  ownRoutes: CustomRoute[];
  /** The OpenAPI document, with the function's prefix as its server; absent when the model did not load. */
  document?: Record<string, unknown>;
}

/** The routes a declaration adds, read without building the whole app. */
export function declaredRoutes(fn: ResolvedFunction): CustomRoute[] {
  const app = new Hono();
  fn.routes?.(app, new FunctionHost(fn));
  return ownRoutes(app.routes);
}

/**
 * A function whose model is loaded in `host`. `live`: the process serving it describes it, so its
 * load and warm-up times belong in the facts (never in the build's generated files).
 */
export function describeHost(host: FunctionHost, routes: CustomRoute[], live = false): DescribedFunction {
  const fn = host.fn;
  if (host.state !== 'ready') return { ...fn, ownRoutes: routes, ...(host.state === 'failed' ? { error: host.notReadyReason() } : {}) };
  const model = host.model;
  return { ...fn, ownRoutes: routes, inputs: model.inputs.length, document: openApiDocument(fn, model, routes, fn.prefix, { facts: modelFacts(fn.modelPath, live ? { loadMs: model.loadMs, warmUpMs: host.warmUpMs } : {}) }) };
}

/**
 * Reads every function's model metadata (no inference thread, no run) to describe it.
 *
 * @example const described = await describeFunctions(functions); nginxConfig(described, { mode: 'dns' });
 */
export async function describeFunctions(functions: readonly ResolvedFunction[]): Promise<DescribedFunction[]> {
  const out: DescribedFunction[] = [];
  for (const fn of functions) {
    const host = new FunctionHost(fn);
    const routes = declaredRoutes(fn);
    try {
      // The other versions' models load too (and are let go): a version that cannot load fails the build as the function's would.
      for (const version of fn.versions) if (version.modelPath !== fn.modelPath) await (await loadModel(version.modelPath, { thread: false })).release();
      const model = await loadModel(fn.modelPath, { thread: false });
      host.setModel(model);
      out.push(describeHost(host, routes));
      await model.release();
    } catch (err) {
      const message = (err as Error).message;
      // A model that needs a locale this machine lacks still runs in its image, which carries
      // the locale: describe it without its metadata rather than refuse it.
      out.push(err instanceof ModelLoadError && err.missingLocale ? { ...fn, ownRoutes: routes } : { ...fn, ownRoutes: routes, error: message });
    }
  }
  return out;
}

/** The gateway page's card of a described function. */
export function cardOf(fn: DescribedFunction, stats?: FunctionStats): FunctionCard {
  // Several versions: each with its declared share (the live view shows the split in force).
  const versions = fn.versions?.length > 1 ? fn.versions.map(({ version }) => {
    const shadow = fn.shadow.find((s) => s.version === version)?.percent;
    return { version, traffic: fn.traffic.find((s) => s.version === version)?.percent ?? 0, ...(shadow ? { shadow } : {}) };
  }) : undefined;
  // Each version runs its own replicas: the card declares them all.
  const replicas = versions ? fn.versions.reduce((n, v) => n + v.replicas, 0) : fn.replicas;
  return { name: fn.name, prefix: fn.prefix, replicas, scales: fn.scale !== undefined || (fn.versions ?? []).some((v) => v.scale !== undefined), keyed: fn.auth !== undefined, description: fn.description, document: fn.document, routes: fn.ownRoutes, stats, ...(versions ? { versions } : {}) };
}
