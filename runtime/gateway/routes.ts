/**
 * The gateway's routing, in one place: the nginx config (builder/render/nginx.ts) and embedded mode
 * (runtime/gateway/embedded.ts) are both generated from this table, so they route alike.
 */
import type { ResolvedFunction } from '../function/define.ts';
import { EXTENSIONS } from '../tensor/infer.ts';
import { VERSION } from '../core/version.ts';
import { functionEntry, type FunctionSummary } from '../pages/entry.ts';

export type { FunctionSummary };

export type GatewayRoute =
  /** `<prefix>` exactly: redirect to `<prefix>/`. */
  | { kind: 'redirect'; path: string; fn: string }
  /**
   * Paths starting with `path`: forwarded; `strip` removes the function's prefix first. `version`:
   * always to that version (the protocol's versioned paths); without it, the split decides.
   */
  | { kind: 'prefix'; path: string; fn: string; strip?: string; version?: string }
  /** `path` exactly: forwarded unchanged. */
  | { kind: 'exact'; path: string; fn: string; version?: string }
  /**
   * `<prefix>/stats` of a function with several versions, exactly: its figures, each version's,
   * with the split in force (runtime/http/stats.ts); never split, so nginx tells it the split.
   */
  | { kind: 'stats'; path: string; fn: string; strip: string };

/**
 * Every route of every function, in match order.
 *
 * @example gatewayRoutes([iris]) // /iris -> redirect, /iris/... -> iris (prefix stripped), /v2/models/iris/... -> iris
 */
export function gatewayRoutes(functions: readonly (Pick<ResolvedFunction, 'name' | 'prefix'> & { versions?: readonly { version: string }[] })[]): GatewayRoute[] {
  return functions.flatMap((fn): GatewayRoute[] => [
    { kind: 'redirect', path: fn.prefix, fn: fn.name },
    { kind: 'prefix', path: `${fn.prefix}/`, fn: fn.name, strip: fn.prefix },
    { kind: 'prefix', path: `/v2/models/${fn.name}/`, fn: fn.name },
    { kind: 'exact', path: `/v2/models/${fn.name}`, fn: fn.name },
    // With several versions, each one's protocol paths reach it alone (runtime/function/traffic.ts routeRequest).
    ...(fn.versions && fn.versions.length > 1 ? [
      ...fn.versions.flatMap(({ version }): GatewayRoute[] => [
        { kind: 'prefix', path: `/v2/models/${fn.name}/versions/${version}/`, fn: fn.name, version },
        { kind: 'exact', path: `/v2/models/${fn.name}/versions/${version}`, fn: fn.name, version },
      ]),
      { kind: 'stats', path: `${fn.prefix}/stats`, fn: fn.name, strip: fn.prefix } as const,
    ] : []),
  ]);
}

/** Finds the route for a path the way nginx does: exact matches first, then the longest prefix. */
export function matchRoute(routes: readonly GatewayRoute[], path: string): GatewayRoute | undefined {
  let best: GatewayRoute | undefined;
  for (const route of routes) {
    if (route.kind !== 'prefix') {
      if (route.path === path) return route;
    } else if (path.startsWith(route.path) && (!best || route.path.length > best.path.length)) {
      best = route;
    }
  }
  return best;
}

/** The path a function sees for a gateway path. */
export function forwardedPath(route: GatewayRoute, path: string): string {
  return (route.kind === 'prefix' || route.kind === 'stats') && route.strip ? path.slice(route.strip.length) : path;
}

/** The function list the gateway answers at `GET /`. */
export function functionIndex(functions: readonly FunctionSummary[]) {
  return { name: 'modelfn', version: VERSION, functions: functions.map(functionEntry) };
}

/** The protocol's server metadata, as the gateway answers it. */
export const SERVER_METADATA = { name: 'modelfn', version: VERSION, extensions: [...EXTENSIONS] };

/** The gateway's JSON error messages (nginx error pages and embedded mode alike). */
export const GATEWAY_ERRORS = {
  404: 'no route at the gateway for this path; GET / lists the functions',
  413: 'request body is larger than the function allows',
  429: 'too many requests; retry later',
  502: 'bad gateway: the function did not answer properly',
  503: 'service unavailable',
  504: 'the function did not answer in time',
} as const;

/** A function's 413, as its app words it (runtime/http/app.ts) and the gateway repeats it. */
export const bodyTooLarge = (name: string, bytes: number) => `request body is larger than the limit of ${bytes} bytes for '${name}'`;

/** The gateway's 404 for a path no function takes: what there is, and how to add a function. */
export const noRoute = (prefixes: readonly string[]) => prefixes.length
  ? `no route at the gateway for this path; the functions are at ${prefixes.map((p) => `${p}/`).join(', ')} (GET / lists them); add one with npx modelfn new <name>`
  : 'no route at the gateway for this path: there are no functions yet; add one with npx modelfn new <name>';

export const unknownModel = (name: string) => `unknown model '${name}'; GET / lists the functions`;
export const functionUnavailable = (name: string) => `function '${name}' is unavailable: no replica is answering`;
