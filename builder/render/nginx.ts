/**
 * The gateway's nginx configuration, generated from the function declarations: one source of
 * truth for prefixes, body limits and timeouts.
 */
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import { GATEWAY_ERRORS, SERVER_METADATA, bodyTooLarge, functionIndex, functionUnavailable, gatewayRoutes, noRoute, unknownModel } from '../../runtime/gateway/routes.ts';
import {
  DNS_VALID_SECONDS, FUNCTION_PORT, GATEWAY_BODIES, GATEWAY_IN_FLIGHT_PER_REPLICA, GATEWAY_PAGE, GATEWAY_PORT, GATEWAY_RESOURCES, GENERATED_HEADER, SCALED_CONNECT_TIMEOUT_MS,
  TIMEOUT_GRACE_MS, UPSTREAM_KEEPALIVE_CONNECTIONS, UPSTREAM_KEEPALIVE_TIMEOUT_MS, WAKE_BOUND_MS,
  deploymentUnits, scaledUnits, serviceName,
} from '../policy.ts';
import { SPLIT_HEADER, TRAFFIC_KEY_HEADER, lastNonZero, toHundredths, isFull, splitHeaderValue, type Split } from '../../runtime/function/traffic.ts';

/**
 * How nginx finds a function's replicas. Either way each function is an `upstream` with a pool
 * of kept-alive connections (HTTP/1.1), so a request does not open a TCP connection.
 * - `dns`: the service name is resolved through the engine's DNS while nginx runs (`server ...
 *   resolve` in an upstream with a shared-memory zone, nginx >= 1.27.3), every replica's
 *   address, re-resolved every few seconds: replicas added later get traffic. Docker Compose
 *   (and Swarm's `dnsrr`) give each replica its own address this way.
 * - `vip`: the service name is one stable virtual address that the engine balances
 *   (Kubernetes Services, Swarm's VIPs), resolved once.
 */
export type DiscoveryMode = 'dns' | 'vip';

export interface NginxOptions {
  mode: DiscoveryMode;
  /** DNS server for `dns` mode; Docker's embedded DNS by default. */
  resolver?: string;
  /** `dns` mode: seconds a DNS answer is kept (compose's policy by default). */
  dnsValidSeconds?: number;
  /** Milliseconds to connect to a scaled function's replica before waking it instead (compose's policy by default). */
  scaledConnectTimeoutMs?: number;
  /** Said after the discovery mode in the file's header, e.g. which orchestrator it is for. */
  discoveryNote?: string;
  /** Port the function containers listen on. */
  functionPort?: number;
  /** Port nginx listens on inside its container. */
  listenPort?: number;
  /** Host name of a function's service, or of one version's (serviceName by default: `<name>`, `<name>-v<N>`). */
  serviceHost?: (fn: ResolvedFunction) => string;
  /**
   * Host name of the activator (compose and swarm): a function with `scale` that no replica answers for
   * (connection refused, no address) has its request handed there to wake it. Without it,
   * such a request gets the 503 JSON as for any function.
   */
  activator?: string;
}

/** Escapes a value for an nginx single-quoted string. */
function quote(text: string): string {
  if (text.includes('$')) throw new Error(`nginx string must not contain '$': ${text}`);
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)}s`;
}

/** A JSON body for nginx's `return`, double-quoted so that nginx variables in it expand. */
function jsonWithVariables(body: object): string {
  return `"${JSON.stringify(body).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * nginx's own answers besides the gateway's (GATEWAY_ERRORS): JSON too, saying nothing of nginx.
 * 494 is nginx's code for headers too large, answered as 431. Their pages are internal URIs, not
 * named locations: nginx refuses a request line it could not read before it has a URI, and a
 * named location cannot be reached without one.
 */
const NGINX_ERRORS: Record<string, { status: number; message: string }> = {
  400: { status: 400, message: 'bad request: the gateway could not read it' },
  408: { status: 408, message: 'the request did not arrive in time' },
  414: { status: 414, message: 'the request URI is too long' },
  494: { status: 431, message: 'the request headers are too large' },
  500: { status: 500, message: 'internal error at the gateway' },
  501: { status: 501, message: 'not implemented at the gateway' },
  505: { status: 505, message: 'HTTP version not supported' },
};

function errorPages(indent: string, unavailable: string, tooLarge = '@modelfn_413'): string {
  return [
    ...Object.entries(NGINX_ERRORS).map(([code, { status }]) => `${indent}error_page ${code} =${status} /_modelfn/error/${code};`),
    `${indent}error_page 404 @modelfn_404;`,
    `${indent}error_page 413 ${tooLarge};`,
    `${indent}error_page 429 @modelfn_429;`,
    // Over a count of bodies held (limit_conn): a 503 of its own, never a wake.
    `${indent}error_page ${GATEWAY_BODIES.busyStatus} =503 @modelfn_busy;`,
    ...(unavailable === '@modelfn_activate'
      // '=' alone: the client gets the activator's own status (200 once woken). 504 too: a
      // stopped replica's address can outlive it in nginx (the engine's DNS fails rather than
      // answering "no such name" once no replica runs), and a connection to it times out.
      ? [`${indent}error_page 502 503 504 = ${unavailable};`]
      : [`${indent}error_page 502 503 =503 ${unavailable};`, `${indent}error_page 504 = @modelfn_504;`]),
  ].join('\n');
}

/** Headers on every gateway answer. A location with add_header of its own inherits none, so they are repeated there. */
const RESPONSE_HEADERS = [
  'add_header X-Request-Id $modelfn_request_id always;',
  'add_header X-Content-Type-Options nosniff always;',
  'add_header X-Frame-Options DENY always;',
  'add_header Referrer-Policy no-referrer always;',
];

const zoneOf = (fn: Pick<ResolvedFunction, 'name'>) => `modelfn_${fn.name.replace(/-/g, '_')}`;
/** A function's upstream, or one version's (`modelfn_<name>_v<N>`). */
const upstreamOf = (fn: ResolvedFunction) => `modelfn_${serviceName(fn).replace(/-/g, '_')}`;
/** The variables holding the upstream a request of a function with versions goes to, and the one its copy goes to. */
const versionVariable = (fn: ResolvedFunction) => `$${zoneOf(fn)}_version`;
const shadowVariable = (fn: ResolvedFunction) => `$${zoneOf(fn)}_shadow`;
const mirrorUriVariable = (fn: ResolvedFunction) => `$${zoneOf(fn)}_mirror_uri`;
/** The variable naming the service (deployment unit) the split chose for a request of a function with versions. */
const unitVariable = (fn: ResolvedFunction) => `$${zoneOf(fn)}_unit`;
/** The deployment unit of one version of a function (the function itself when it has one). */
const unitOf = (fn: ResolvedFunction, version: string) => deploymentUnits(fn).find((u) => u.version === version)!;

/**
 * Whether a route's requests may reach a deployment unit that scales (and so a sleeping one): a
 * versioned path, its version's; the split's routes, any version the split gives a share.
 */
function routeScales(fn: ResolvedFunction, version?: string): boolean {
  if (fn.versions.length < 2) return fn.scale !== undefined;
  if (version) return unitOf(fn, version).scale !== undefined;
  return fn.traffic.some((share) => toHundredths(share.percent) > 0 && unitOf(fn, share.version).scale !== undefined);
}

/**
 * A split as nginx's split_clients writes it, shares in version order (hundredths of a percent,
 * 0% left out: nginx would read it as `*`), the last share of a full split as `*`, exactly as
 * runtime/function/traffic.ts reads the hash line, so embedded mode and the gateway agree.
 */
function splitClients(key: string, variable: string, split: Split, upstream: (version: string) => string): string {
  const star = isFull(split) ? lastNonZero(split) : -1;
  const lines = split.flatMap((share, i) => {
    if (toHundredths(share.percent) === 0) return [];
    const percent = i === star ? '*' : `${(toHundredths(share.percent) / 100).toFixed(2).replace(/\.?0+$/, '')}%`;
    return [`        ${percent} ${upstream(share.version)};`];
  });
  return `    split_clients "${key}" ${variable} {\n${lines.join('\n')}\n    }`;
}

/** The split and the shadow of a function with versions, at the http level. */
function versionSplits(fn: ResolvedFunction): string {
  const upstream = (version: string) => upstreamOf(unitOf(fn, version));
  const shares = (split: Split) => split.map((s) => `${s.version} ${s.percent}%`).join(', ') || 'none';
  const units = deploymentUnits(fn);
  const lines = [
    `    # ${fn.name}: versions ${fn.versions.map((v) => v.version).join(', ')}; traffic ${shares(fn.traffic)}; shadow ${shares(fn.shadow)}`,
    splitClients('$modelfn_traffic_key', versionVariable(fn), fn.traffic, upstream),
    // The service the split chose, named to the activator (X-Modelfn-Function) when it is asleep.
    `    map ${versionVariable(fn)} ${unitVariable(fn)} {\n${units.map((u) => `        ${upstreamOf(u)} ${serviceName(u)};`).join('\n')}\n    }`,
  ];
  if (fn.shadow.some((s) => s.percent > 0)) {
    // A copy is chosen on its own point of the hash line, as embedded mode does ("shadow:" + key).
    lines.push(splitClients('shadow:$modelfn_traffic_key', shadowVariable(fn), fn.shadow, upstream));
    // The copy's URI is the one the version would get: the prefix stripped as for the request itself.
    const prefix = fn.prefix.replace(/[.]/g, '\\.');
    lines.push(`    map $request_uri ${mirrorUriVariable(fn)} {\n        default $request_uri;\n        "~^${prefix}(?<rest>/.*)$" $rest;\n    }`);
  }
  return lines.join('\n');
}

/** The largest body of a size class a function can be sent (its limit caps every class). */
function largestBody(fn: ResolvedFunction, size: (typeof GATEWAY_BODIES.classes)[number]): number {
  return Math.min(size.largestBytes ?? Infinity, fn.limits.bodySize);
}

/**
 * How many bodies of each size class may be held at once: in all (each counted at the largest
 * any function takes) and per function (half the space, at least one).
 */
function bodyCounts(functions: readonly ResolvedFunction[]) {
  return GATEWAY_BODIES.classes.map((size) => {
    const space = size.spaceMiB * 1024 * 1024;
    const largest = Math.max(1, ...functions.map((fn) => largestBody(fn, size)));
    return {
      name: size.name,
      total: Math.max(1, Math.floor(space / largest)),
      perFunction: (fn: ResolvedFunction) => Math.max(1, Math.floor(space / 2 / largestBody(fn, size))),
    };
  });
}

/** Requests a function may have in flight at the gateway: per replica it may run, all versions together. */
export function inFlightOf(fn: ResolvedFunction): number {
  const replicas = deploymentUnits(fn).reduce((n, unit) => n + (unit.scale ? unit.scale.max : unit.replicas), 0);
  return GATEWAY_IN_FLIGHT_PER_REPLICA * Math.max(1, replicas);
}

/** The maps and zones that count the bodies held by size class, per function and in all. */
function bodyZones(): string {
  const classes = GATEWAY_BODIES.classes;
  const lines = [
    '    # Request bodies held at once, by size class (build/policy.ts GATEWAY_BODIES): Content-Length',
    `    # of up to 4 digits stays in memory (client_body_buffer_size), ${classes.filter((c) => c.digits).map((c) => `${c.digits} digits is ${c.name}`).join(', ')},`,
    '    # more (or a body without a length) large. Each class is counted per function and in all.',
    '    map "$http_transfer_encoding:$content_length" $modelfn_body_class {',
    '        default large;',
    '        ":" "";',
    '        "~^:[0-9]{1,4}$" "";',
    ...classes.filter((c) => c.digits).map((c) => `        "~^:[0-9]{${c.digits}}$" ${c.name};`),
    '    }',
  ];
  for (const { name } of classes) {
    lines.push(`    map $modelfn_body_class $modelfn_${name}_fn { ${name} $modelfn_fn; default ""; }`);
    lines.push(`    map $modelfn_body_class $modelfn_${name}_all { ${name} all; default ""; }`);
    lines.push(`    limit_conn_zone $modelfn_${name}_fn zone=modelfn_${name}_fn:64k;`);
    lines.push(`    limit_conn_zone $modelfn_${name}_all zone=modelfn_${name}_all:64k;`);
  }
  lines.push(
    '    # Requests in flight per function (builder/policy.ts GATEWAY_IN_FLIGHT_PER_REPLICA).',
    '    limit_conn_zone $modelfn_fn zone=modelfn_in_flight:256k;',
    `    limit_conn_status ${GATEWAY_BODIES.busyStatus};`,
    '    limit_conn_log_level warn;',
  );
  return lines.join('\n');
}

/**
 * A function's upstream. In `dns` mode the replicas are re-resolved while nginx runs; failures
 * are not counted against a replica (`max_fails=0`): a refused or reset request is retried on
 * another one at once, and a replica that comes back (or wakes up) is used again at once.
 */
function upstreamBlock(fn: ResolvedFunction, options: Options): string {
  // fn is one deployment unit: a function, or one version of a function with several.
  const server = `${options.serviceHost(fn)}:${options.functionPort}`;
  return [
    `    upstream ${upstreamOf(fn)} {`,
    // Its own shared-memory zone name: the rate limit's zone already carries the function's name.
    options.mode === 'dns' ? `        zone ${upstreamOf(fn)}_upstream 64k;` : '',
    `        server ${server}${options.mode === 'dns' ? ' resolve' : ''} max_fails=0;`,
    `        keepalive ${UPSTREAM_KEEPALIVE_CONNECTIONS};`,
    `        keepalive_timeout ${seconds(UPSTREAM_KEEPALIVE_TIMEOUT_MS)};`,
    '    }',
  ].filter(Boolean).join('\n');
}

/** The options with every default filled in (the activator stays optional: compose alone has one). */
type Options = NginxOptions & Required<Omit<NginxOptions, 'activator'>>;

/** nginx rates are whole requests per second or per minute. */
function rate(requestsPerSecond: number): string {
  return Number.isInteger(requestsPerSecond) ? `${requestsPerSecond}r/s` : `${Math.max(1, Math.round(requestsPerSecond * 60))}r/m`;
}

function functionLocations(fn: ResolvedFunction, options: Options, counts: ReturnType<typeof bodyCounts>): string {
  const versioned = fn.versions.length > 1;
  const mirrored = versioned && fn.shadow.some((s) => s.percent > 0);
  // With versions, the split's variable names the upstream (nginx looks a variable's value up among its upstreams).
  const upstreamFor = (version?: string) => `http://${versioned ? (version ? upstreamOf(unitOf(fn, version)) : versionVariable(fn)) : upstreamOf(fn)}`;
  const common = (indent: string, version?: string) => {
    // Each version scales on its own: a route wakes through the activator when it may reach one that scales.
    const wakes = routeScales(fn, version) && options.activator !== undefined;
    return [
    `${indent}set $modelfn_fn ${fn.name};`,
    `${indent}set $modelfn_unit ${versioned ? (version ? serviceName(unitOf(fn, version)) : unitVariable(fn)) : serviceName(fn)};`,
    `${indent}client_max_body_size ${fn.limits.bodySize};`,
    ...counts.flatMap((c) => [`${indent}limit_conn modelfn_${c.name}_fn ${c.perFunction(fn)};`, `${indent}limit_conn modelfn_${c.name}_all ${c.total};`]),
    `${indent}limit_conn modelfn_in_flight ${inFlightOf(fn)};`,
    `${indent}proxy_read_timeout ${seconds(fn.limits.timeoutMs + TIMEOUT_GRACE_MS)};`,
    `${indent}proxy_send_timeout ${seconds(fn.limits.timeoutMs + TIMEOUT_GRACE_MS)};`,
    fn.rateLimit ? `${indent}limit_req zone=${zoneOf(fn)} burst=${fn.rateLimit.burst} nodelay;` : '',
    // A sleeping function refuses connections, or its address is gone: a live replica connects
    // within the deployment's short wait (SCALED_CONNECT_TIMEOUT_MS), which tells them apart.
    wakes ? `${indent}proxy_connect_timeout ${options.scaledConnectTimeoutMs}ms;` : '',
    // nginx's own 502/503/504 then wake it through the activator.
    errorPages(indent, wakes ? '@modelfn_activate' : '@modelfn_unavailable', `@${zoneOf(fn)}_413`),
    ].filter(Boolean).join('\n');
  };
  // The split's routes send a copy of their share to the shadow version; versioned paths never do.
  const mirror = (route: { version?: string }) => (mirrored && !route.version ? `        mirror /_modelfn/mirror/${fn.name};\n` : '');
  const locations = gatewayRoutes([fn]).map((route) => {
    switch (route.kind) {
      case 'redirect':
        return `    location = ${route.path} {\n        return 308 ${route.path}/$is_args$args;\n    }`;
      case 'prefix': {
        const strip = route.strip
          ? `        set $modelfn_prefix ${route.strip};\n        rewrite ^${route.strip.replace(/[.]/g, '\\.')}(/.*)$ $1 break;\n`
          : '';
        return `    location ^~ ${route.path} {\n${common('        ', route.version)}\n${mirror(route)}${strip}        proxy_pass ${upstreamFor(route.version)};\n    }`;
      }
      case 'exact':
        return `    location = ${route.path} {\n${common('        ', route.version)}\n${mirror(route)}        proxy_pass ${upstreamFor(route.version)};\n    }`;
      case 'stats':
        // Whichever version is asked gathers every version's figures; the split it is told is the
        // one this file runs (after modelfn traffic, the changed one), not the declared one.
        // The page's lookup (SSI) holds the answer in memory: room for many versions' figures.
        return `    location = ${route.path} {\n${common('        ')}\n        subrequest_output_buffer_size 64k;\n        set $modelfn_split ${quote(splitHeaderValue(fn.traffic, fn.shadow))};\n`
          + `        set $modelfn_prefix ${route.strip};\n        rewrite ^${route.strip.replace(/[.]/g, '\\.')}(/.*)$ $1 break;\n        proxy_pass ${upstreamFor()};\n    }`;
    }
  });
  if (mirrored) {
    // The copy: its answer is discarded by nginx; a request outside the shadow's share is not sent.
    locations.push(`    location = /_modelfn/mirror/${fn.name} {
        internal;
        if (${shadowVariable(fn)} = '') {
            return 204;
        }
        proxy_read_timeout ${seconds(fn.limits.timeoutMs + TIMEOUT_GRACE_MS)};
        proxy_set_header X-Modelfn-Shadow 1;
        proxy_pass http://${shadowVariable(fn)}${mirrorUriVariable(fn)};
    }`);
  }
  const versions = versioned ? `; versions ${fn.versions.map((v) => v.version).join(', ')} split by ${TRAFFIC_KEY_HEADER} (else at random)` : '';
  return `\n    # ${fn.name}: ${fn.prefix}/... with the prefix stripped, and /v2/models/${fn.name}/... unchanged${versions}\n${locations.join('\n')}`;
}

/**
 * The whole nginx.conf.
 *
 * @example writeFileSync('nginx/nginx.conf', nginxConfig(functions, { mode: 'dns' }));
 */
export function nginxConfig(functions: readonly ResolvedFunction[], opts: NginxOptions): string {
  const options: Options = {
    resolver: '127.0.0.11',
    dnsValidSeconds: DNS_VALID_SECONDS.compose,
    scaledConnectTimeoutMs: SCALED_CONNECT_TIMEOUT_MS.compose,
    discoveryNote: '',
    functionPort: FUNCTION_PORT,
    listenPort: GATEWAY_PORT,
    serviceHost: serviceName,
    ...opts,
  };
  const scaled = scaledUnits(functions);
  const counts = bodyCounts(functions);
  const activator = options.activator && scaled.length ? options.activator : undefined;
  const versioned = functions.filter((fn) => fn.versions.length > 1);
  // The key a split hashes: the client's traffic key, else the request's own id (a random split).
  const splits = versioned.length ? `
    map $http_${TRAFFIC_KEY_HEADER.toLowerCase().replace(/-/g, '_')} $modelfn_traffic_key {
        default $http_${TRAFFIC_KEY_HEADER.toLowerCase().replace(/-/g, '_')};
        '' $request_id;
    }
${versioned.map(versionSplits).join('\n')}
` : '';
  // A split between versions that scale and versions that do not hands the activator only the
  // former: one that does not scale and took no connection is unavailable, as anywhere else.
  const mixed = activator !== undefined && versioned.some((fn) => routeScales(fn) && fn.traffic.some((s) => toHundredths(s.percent) > 0 && !unitOf(fn, s.version).scale));
  const upstreams = splits + functions.flatMap(deploymentUnits).map((fn) => `\n${upstreamBlock(fn, options)}`).join('\n') + (activator ? `

    # The activator (scale to zero), re-resolved like the functions, connections kept.
    upstream modelfn_activator {
        zone modelfn_activator_upstream 64k;
        server ${activator}:${options.functionPort} resolve max_fails=0;
        keepalive 8;
    }` : '') + (mixed ? `

    # The services the activator wakes (each version scales on its own).
    map $modelfn_unit $modelfn_wakes {
        default 0;
${scaled.map((unit) => `        ${serviceName(unit)} 1;`).join('\n')}
    }` : '');
  const errors: Record<string, string> = { ...GATEWAY_ERRORS, 404: noRoute(functions.map((fn) => fn.prefix)) };
  // Answers that say "later" carry Retry-After; a location with add_header of its own inherits none.
  const retryLater = `\n${[...RESPONSE_HEADERS, 'add_header Retry-After 1 always;'].map((l) => `        ${l}`).join('\n')}`;
  // Each function's 413 names its limit, as the function itself does (nginx refuses before any variable is set).
  const tooLarge = functions.map((fn) => `
    location @${zoneOf(fn)}_413 {
        default_type application/json;
        return 413 ${quote(JSON.stringify({ error: bodyTooLarge(fn.name, fn.limits.bodySize) }))};
    }`).join('\n');
  /** Inside a named location: the function's 503 unavailable answer, with Retry-After, when `condition` holds. */
  const unavailableIf = (condition: string) => `
        if (${condition}) {${retryLater.replaceAll('\n        ', '\n            ')}
            return 503 ${jsonWithVariables({ error: functionUnavailable('$modelfn_fn') })};
        }`;
  // A 504 where no replica ever took the connection (every attempt's connect time is '-': the
  // replica's address outlives a crashed or stopped container, and connecting to it times out) is
  // the function being unavailable, not slow: the 503 that says so, with Retry-After. (Reached by
  // 'error_page 504 = ...', so that the status is the one returned here.)
  const neverConnected = unavailableIf('$upstream_connect_time !~ "[0-9]"');
  const named = [
    ...Object.entries(errors).map(([code, message]) => ({ at: `@modelfn_${code}`, status: Number(code), body: quote(JSON.stringify({ error: message })) })),
    ...Object.entries(NGINX_ERRORS).map(([code, { status, message }]) => ({ at: `= /_modelfn/error/${code}`, status, body: quote(JSON.stringify({ error: message })) })),
    { at: '@modelfn_busy', status: 503, body: jsonWithVariables({ error: "the gateway holds as many requests for '$modelfn_fn' as it may at once (in flight, or bodies of this size); retry shortly" }) },
  ].map(({ at, status, body }) => `
    location ${at} {${at.startsWith('=') ? '\n        internal;' : ''}
        default_type application/json;${status === 429 || status === 503 ? retryLater : ''}${at === '@modelfn_504' ? neverConnected : ''}
        return ${status} ${body};
    }`).join('\n');
  const zones = functions.filter((fn) => fn.rateLimit).map((fn) =>
    `    limit_req_zone $binary_remote_addr zone=${zoneOf(fn)}:10m rate=${rate(fn.rateLimit!.requestsPerSecond)};`);
  const serverMeta = JSON.stringify(SERVER_METADATA);
  const notScaled = mixed ? unavailableIf('$modelfn_wakes = 0') : '';
  const activate = activator ? `
    # Functions that scale to zero: a request no replica took goes to the activator, which wakes
    # one and forwards it (the body is sent again from nginx's buffer). The function (the service
    # of the version it goes to) is named in X-Modelfn-Function, set here whatever the client
    # sent; the URI is the one the function would have got (proxy_pass without one: the prefix
    # already stripped, or as the client sent it).
    location @modelfn_activate {
        recursive_error_pages on;
        error_page 502 503 504 =503 @modelfn_unavailable;${notScaled}
        proxy_read_timeout ${seconds(WAKE_BOUND_MS + Math.max(...scaled.map((fn) => fn.limits.timeoutMs)) + TIMEOUT_GRACE_MS)};
        proxy_pass http://modelfn_activator;
    }
` : '';
  // A location with add_header of its own inherits none from the server: repeat them with Vary.
  const rootHeaders = [...RESPONSE_HEADERS, 'add_header Vary Accept always;'].map((line) => `            ${line}`).join('\n');

  return `${GENERATED_HEADER}
# Functions: ${functions.map((f) => `${f.name} (${f.prefix})`).join(', ')}
# Discovery: ${options.mode}${options.discoveryNote ? `, ${options.discoveryNote}` : ''}
# One worker per CPU the gateway may use (its limit in compose and swarm): with two workers
# under a one-CPU limit the kernel throttles both (iris at 64 connections: 2.7k against 3.4k
# requests/s with one worker, BENCHMARKS.md).
worker_processes ${GATEWAY_RESOURCES.limits.cpus};
pid /tmp/nginx.pid;
error_log /dev/stderr warn;

events {
    worker_connections 4096;
}

http {
    server_tokens off;
    # No types by file extension: a JSON error for /x.html must not be labelled text/html.
    types { }
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    # The functions decode compressed request bodies and compress their own answers when the
    # client asks: Content-Encoding and Accept-Encoding pass through unchanged, and nginx must
    # not compress a second time.
    gzip off;
    keepalive_timeout 65s;${options.mode === 'dns' ? `
    # On a reload (modelfn traffic), the old workers keep a client's keep-alive connection that was
    # busy within the last second instead of closing it under a request the client is sending
    # (nginx >= 1.27.4, as the gateway's image; \`vip\` mode stays within older nginx).
    keepalive_min_timeout 1s;` : ''}
    keepalive_requests 10000;
    client_body_temp_path /tmp/nginx-client-body;
    proxy_temp_path /tmp/nginx-proxy;
    fastcgi_temp_path /tmp/nginx-fastcgi;
    uwsgi_temp_path /tmp/nginx-uwsgi;
    scgi_temp_path /tmp/nginx-scgi;
    # Bodies above this are written to the tmpfs, counted by size class (below).
    client_body_buffer_size ${GATEWAY_BODIES.memoryBytes};
    # Answers are passed on as they come, never written to a temporary file: the tmpfs is for bodies.
    proxy_max_temp_file_size 0;
    large_client_header_buffers 4 16k;
${options.mode === 'dns' ? `
    # Replicas are looked up again every few seconds, so replicas added later receive traffic.
    resolver ${options.resolver} valid=${options.dnsValidSeconds}s ipv6=off;
    resolver_timeout 2s;
` : ''}
    # Browsers (Accept: text/html) get the page at GET /; API clients get the JSON index.
    map $http_accept $modelfn_wants_html {
        default 0;
        ~*text/html 1;
    }

    # The request id: the client's X-Request-Id when it sent one, else nginx's own.
    map $http_x_request_id $modelfn_request_id {
        default $http_x_request_id;
        '' $request_id;
    }

    log_format modelfn_json escape=json '{"time":"$time_iso8601","request_id":"$modelfn_request_id",'
        '"remote_addr":"$remote_addr","method":"$request_method","uri":"$request_uri","status":$status,'
        '"bytes_sent":$body_bytes_sent,"request_time":$request_time,"fn":"$modelfn_fn",'
        '"upstream":"$upstream_addr","upstream_status":"$upstream_status","upstream_time":"$upstream_response_time"}';
    # Buffered: one write per 64 KiB or per second, not one per request.
    access_log /dev/stdout modelfn_json buffer=64k flush=1s;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Request-Id $modelfn_request_id;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Prefix $modelfn_prefix;
    # Which function a request is for (with versions, the service of the one it goes to,
    # \`<name>-v<N>\`: what a wake starts), said by nginx alone: a client's own header of that name
    # is replaced (and, outside the functions' locations, where it is empty, not sent).
    proxy_set_header X-Modelfn-Function $modelfn_unit;${versioned.length ? `
    # The split in force, told to the /stats of a function with versions (set there alone; empty, not sent).
    proxy_set_header ${SPLIT_HEADER} $modelfn_split;` : ''}
    proxy_hide_header X-Request-Id;
    proxy_connect_timeout 2s;
    # Inference is idempotent: a request that could not reach one replica, or that failed on a
    # kept-alive connection the replica closed (it restarts, or stops), is retried on another.
    proxy_next_upstream error timeout http_502 non_idempotent;
    proxy_next_upstream_tries 3;
    proxy_next_upstream_timeout 10s;

${bodyZones()}
${zones.length ? `
    # Rate limits per client address, from the functions' declarations.
    limit_req_status 429;
${zones.join('\n')}
` : ''}${upstreams}

    server {
        listen ${options.listenPort} default_server;
        set $modelfn_fn '';
        set $modelfn_unit '';
        set $modelfn_prefix '';${versioned.length ? "\n        set $modelfn_split '';" : ''}
${RESPONSE_HEADERS.map((l) => `        ${l}`).join('\n')}
${errorPages('        ', '@modelfn_503')}

        location = / {
            # rewrite ... last is one of the two things that are safe inside 'if' in a location.
            if ($modelfn_wants_html) {
                rewrite ^ /_modelfn/page last;
            }
            default_type application/json;
${rootHeaders}
            return 200 ${quote(JSON.stringify(functionIndex(functions)))};
        }
        location = /_modelfn/page {
            internal;
            alias ${GATEWAY_PAGE.image};
            default_type text/html;
            charset utf-8;
            # Each function's state filled in from its /stats as the page goes out (runtime/pages/ui.ts).
            ssi on;
            ssi_silent_errors on;
${rootHeaders}
            add_header Cache-Control no-cache always;
        }
        location = /v2 {
            default_type application/json;
            return 200 ${quote(serverMeta)};
        }
        location = /v2/health/live {
            default_type application/json;
            return 200 '{"live":true}';
        }
        location = /v2/health/ready {
            default_type application/json;
            return 200 '{"ready":true}';
        }
        location ~ ^/v2/models/([A-Za-z0-9._-]+)(/|$) {
            default_type application/json;
            return 404 ${jsonWithVariables({ error: unknownModel('$1') })};
        }
        location /v2/models/ {
            default_type application/json;
            return 404 '{"error":"unknown model; GET / lists the functions"}';
        }
${functions.map((fn) => functionLocations(fn, options, counts)).join('\n')}
${named}
${tooLarge}
${activate}
    location @modelfn_unavailable {
        default_type application/json;${retryLater}
        return 503 ${jsonWithVariables({ error: functionUnavailable('$modelfn_fn') })};
    }
    }
}
`;
}
