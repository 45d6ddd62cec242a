/**
 * A function's entry in the gateway's list (`GET /`, and `GET /` of the function itself):
 * only the routes that work are advertised.
 */
import type { ResolvedFunction } from '../function/define.ts';

/** What the gateway knows of a function: its declaration, and what its model and app showed. */
export interface FunctionSummary extends Pick<ResolvedFunction, 'name' | 'prefix' | 'replicas'>, Partial<Pick<ResolvedFunction, 'versions' | 'traffic' | 'shadow'>> {
  /** The model's inputs; unknown while it is not loaded. `/predict` works for exactly one. */
  inputs?: number;
  /** The routes the function added itself. */
  ownRoutes?: readonly { method: string; path: string }[];
  /** Why it does not serve, when it does not. */
  error?: string;
}

/** One function's entry in the list at `GET /`: only routes that work are advertised. */
export function functionEntry(fn: FunctionSummary) {
  return {
    name: fn.name,
    prefix: fn.prefix,
    model: `/v2/models/${fn.name}`,
    ...(fn.inputs === 1 ? { predict: `${fn.prefix}/predict` } : {}),
    ...(fn.ownRoutes?.length ? { routes: fn.ownRoutes.map((r) => `${r.method} ${fn.prefix}${r.path}`) } : {}),
    docs: `${fn.prefix}/docs`,
    replicas: fn.replicas,
    // Several versions: each with its share of requests and of shadow copies (a function with one says nothing new).
    ...(fn.versions && fn.versions.length > 1 ? {
      versions: fn.versions.map(({ version }) => ({
        version,
        traffic: fn.traffic?.find((t) => t.version === version)?.percent ?? 0,
        ...(fn.shadow?.some((t) => t.version === version) ? { shadow: fn.shadow.find((t) => t.version === version)!.percent } : {}),
      })),
    } : {}),
    ...(fn.error ? { error: fn.error } : {}),
  };
}
