/**
 * `modelfn traffic` on a running compose stack or Swarm stack: the gateway's nginx.conf rendered
 * again with the new split, checked and reloaded inside each running gateway container. nginx's
 * reload is graceful: new workers take new connections with the new configuration while the old
 * ones finish the requests they hold, so no request fails. The gateway runs its config from a
 * volume (GATEWAY_LIVE, builder/render/compose.ts and swarm.ts) because its root file system is
 * read-only; its image has no shell, so files go in with `docker cp` and nginx itself checks and
 * reloads.
 *
 * On Swarm the same reload, in the gateway's task containers on this node, rather than a service
 * update to a new swarm config: a config cannot change, and `--config-rm/--config-add` replaces
 * the task; the gateway publishes its port in host mode, which one task per node can hold, so
 * its update is stop-first (Swarm cannot start the new task beside the old one) and requests
 * would fail while it restarts. Reloading in place keeps the listening socket.
 *
 * Without a new split it prints the split in force (read from the running gateway) and each
 * version's request rate, error rate and p99 over a short window, from the Prometheus metrics of
 * the version's own containers.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ACTIVATOR_SERVICE, FILES, GATEWAY_LIVE, deploymentUnits, serviceName } from '../policy.ts';
import { discoverFunctions } from '../functions.ts';
import { nginxConfig } from '../render/nginx.ts';
import { swarmGatewayConfig } from '../render/swarm.ts';
import { applyOverrides, loadOverrides, parseTrafficArgs, saveOverrides, splitRecord, type Orchestrator } from '../traffic.ts';
import { readConfig } from '../../runtime/core/config.ts';
import { quantileMs } from '../../runtime/core/stats.ts';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import type { Split } from '../../runtime/function/traffic.ts';
import { describeFunctions, type DescribedFunction } from '../../runtime/pages/describe.ts';

const exec = promisify(execFile);

/** A failure meant for the person who ran the command (cli/errors.ts prints its one line). */
class TrafficError extends Error {
  override name = 'CliError';
}

async function docker(args: string[]): Promise<string> {
  return (await exec('docker', args, { encoding: 'utf8', timeout: 60_000, maxBuffer: 16 * 1024 * 1024 })).stdout;
}

/** Which deployment `modelfn traffic` acts on: compose (the default) or Swarm, as the CLI chose. */
export interface TrafficOptions {
  orchestrator?: Orchestrator;
}

/** The gateway's nginx.conf for the functions, as the orchestrator's gateway runs it. */
const gatewayConfig = (functions: readonly ResolvedFunction[], orchestrator: Orchestrator) =>
  (orchestrator === 'swarm' ? swarmGatewayConfig(functions) : nginxConfig(functions, { mode: 'dns', activator: ACTIVATOR_SERVICE }));

/**
 * The gateway's nginx.conf for a compose project (or a Swarm stack): the declarations' with its
 * live changes applied; changes whose declared split changed since are dropped from the store.
 */
export function liveGatewayConfig(functions: readonly ResolvedFunction[], root: string, project: string, log: (line: string) => void = () => {}, orchestrator: Orchestrator = 'compose'): string {
  const overrides = loadOverrides(root, project, orchestrator);
  const { functions: live, kept, dropped } = applyOverrides(functions, overrides);
  if (dropped.length) {
    saveOverrides(root, project, kept, orchestrator);
    log(`  ✓ traffic: the declared split is in force again for ${dropped.join(', ')} (the declaration changed since modelfn traffic)`);
  }
  const on = orchestrator === 'swarm' ? ` (stack ${project})` : '';
  for (const name of Object.keys(kept)) log(`  ✓ traffic: ${name} keeps the split set by modelfn traffic${on}: ${shares(live.find((fn) => fn.name === name)!.traffic)}`);
  return gatewayConfig(live, orchestrator);
}

const shares = (split: Split) => split.map((s) => `${s.version}=${s.percent}`).join(' ');

async function projectFunctions(root: string): Promise<DescribedFunction[]> {
  const { functions, problems } = await discoverFunctions(join(root, 'functions'), readConfig({}));
  if (problems.length) throw new TrafficError(`functions/ has problems (${problems[0]}); run modelfn build`);
  return describeFunctions(functions);
}

export function findFunction<F extends ResolvedFunction>(functions: readonly F[], name: string): F {
  const fn = functions.find((f) => f.name === name);
  if (!fn) throw new TrafficError(`no function '${name}' (functions: ${functions.map((f) => f.name).join(', ') || 'none'})`);
  return fn;
}

/** The label filters of a service's containers: a compose project's, or a Swarm stack's tasks (`<stack>_<service>`). */
const serviceFilters = (orchestrator: Orchestrator, project: string, service: string) => (orchestrator === 'swarm'
  ? ['--filter', `label=com.docker.stack.namespace=${project}`, '--filter', `label=com.docker.swarm.service.name=${project}_${service}`]
  : ['--filter', `label=com.docker.compose.project=${project}`, '--filter', `label=com.docker.compose.service=${service}`]);

/**
 * The running containers of a service on this engine (on Swarm, the tasks of this node). Frozen
 * ones (a version that scales with `wake: 'unpause'`, asleep) are left out: they answer no exec.
 */
export async function containers(orchestrator: Orchestrator, project: string, service: string): Promise<string[]> {
  const out = await docker(['ps', '-q', '--filter', 'status=running', ...serviceFilters(orchestrator, project, service)]);
  return out.split('\n').filter(Boolean);
}

/** Whether the Swarm stack has a gateway service (the engine is a manager of the swarm). */
async function swarmGateway(stack: string): Promise<boolean> {
  const out = await docker(['service', 'ls', '-q', '--filter', `label=com.docker.stack.namespace=${stack}`, '--filter', `name=${stack}_gateway`]).catch(() => '');
  return out.trim() !== '';
}

async function gateways(orchestrator: Orchestrator, project: string): Promise<string[]> {
  const found = await containers(orchestrator, project, 'gateway');
  if (found.length) return found;
  if (orchestrator === 'compose') throw new TrafficError(`no gateway of the compose project '${project}' is running (MODELFN_PROJECT); start it with npm run up (a Swarm stack: modelfn deploy, MODELFN_STACK)`);
  if (await swarmGateway(project)) throw new TrafficError(`the gateway of the stack '${project}' runs on another node: run modelfn traffic on the node that runs it (its container is reloaded there)`);
  throw new TrafficError(`no gateway of the stack '${project}' is running (MODELFN_STACK); deploy it with modelfn deploy`);
}

/**
 * Which deployment of this folder runs: the compose project's gateway, or the Swarm stack's;
 * compose when neither does (the command then says it is not running). Refuses when both do
 * (then --compose or --swarm says which).
 */
export async function runningOrchestrator(project: string, stack: string): Promise<Orchestrator> {
  const [compose, swarm] = await Promise.all([
    containers('compose', project, 'gateway').then((found) => found.length > 0),
    containers('swarm', stack, 'gateway').then((found) => found.length > 0 || swarmGateway(stack)),
  ]);
  if (compose && swarm) throw new TrafficError(`both the compose project '${project}' and the stack '${stack}' run a gateway: say --compose or --swarm`);
  return swarm ? 'swarm' : 'compose';
}

/** The nginx worker processes of a gateway container (docker top: the image has no shell), and whether each is an old one shutting down. */
async function workers(container: string): Promise<{ pid: string; exiting: boolean }[]> {
  const out = await docker(['top', container, '-o', 'pid,args']);
  return out.split('\n').filter((l) => l.includes('nginx: worker process')).map((l) => ({ pid: l.trim().split(/\s+/)[0], exiting: l.includes('shutting down') }));
}

/**
 * Puts a new configuration in force in one gateway container: copied beside the running one and
 * checked by nginx, then copied in place and reloaded gracefully; resolves once new workers
 * serve (the old ones finish their requests on their own).
 */
async function reload(container: string, conf: string, orchestrator: Orchestrator): Promise<void> {
  const file = orchestrator === 'swarm' ? GATEWAY_LIVE.swarmFile : GATEWAY_LIVE.file;
  const mounts = await docker(['inspect', container, '--format', '{{range .Mounts}}{{.Destination}} {{end}}']);
  if (!mounts.split(' ').includes(GATEWAY_LIVE.dir)) throw new TrafficError(`the gateway container ${container.slice(0, 12)} was started by an older modelfn (no ${GATEWAY_LIVE.dir}); run ${orchestrator === 'swarm' ? 'modelfn deploy' : 'npm run up'} once`);
  const before = new Set((await workers(container)).filter((w) => !w.exiting).map((w) => w.pid));
  const dir = mkdtempSync(join(tmpdir(), 'modelfn-traffic-'));
  try {
    writeFileSync(join(dir, 'next.conf'), conf);
    writeFileSync(join(dir, 'nginx.conf'), conf);
    await docker(['cp', join(dir, 'next.conf'), `${container}:${GATEWAY_LIVE.dir}/next.conf`]);
    try {
      await docker(['exec', container, 'nginx', '-t', '-q', '-c', `${GATEWAY_LIVE.dir}/next.conf`]);
    } catch (err) {
      const detail = String((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n')[0];
      throw new TrafficError(`the gateway refused the new configuration: ${detail}`);
    }
    await docker(['cp', join(dir, 'nginx.conf'), `${container}:${file}`]);
    await docker(['exec', container, 'nginx', '-c', file, '-s', 'reload']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const now = await workers(container);
    const serving = now.filter((w) => !w.exiting);
    // In force once new workers serve and the old ones have finished what they held (their
    // keep-alive connections last keepalive_min_timeout after their last request).
    if (serving.length && serving.every((w) => !before.has(w.pid)) && !now.some((w) => w.exiting)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const left = (await workers(container)).filter((w) => w.exiting).length;
  if (!left) throw new TrafficError(`the gateway container ${container.slice(0, 12)} did not start workers with the new configuration within 30 s`);
  // New workers serve; old ones still finish long requests (they end on their own).
}

/**
 * `modelfn traffic <name> <N>=<percent> ...`: the new split in force on every running gateway of
 * the project (on Swarm, of the stack, on this node), and kept for the next `npm run up` (`modelfn
 * deploy`). Resolves to the split set.
 */
export async function setTraffic(root: string, project: string, name: string, args: readonly string[], log: (line: string) => void, options: TrafficOptions = {}): Promise<Split> {
  const orchestrator = options.orchestrator ?? 'compose';
  const functions = await projectFunctions(root);
  const fn = findFunction(functions, name);
  if (fn.versions.length < 2) throw new TrafficError(`${name} has one version (${fn.versions[0].version}); add a version folder (functions/${name}/<N>/model.onnx) to split its traffic`);
  const split = parseTrafficArgs(fn, args);
  if (typeof split === 'string') throw new TrafficError(split);
  const overrides = loadOverrides(root, project, orchestrator);
  const { kept } = applyOverrides(functions, overrides);
  const declared = splitRecord(fn.traffic);
  const wanted = splitRecord(split);
  // Back to the declared split: nothing to keep.
  const same = Object.keys({ ...declared, ...wanted }).every((v) => (declared[v] ?? 0) === (wanted[v] ?? 0));
  if (same) delete kept[name];
  else kept[name] = { declared, traffic: wanted };
  const { functions: live } = applyOverrides(functions, kept);
  const conf = gatewayConfig(live, orchestrator);
  const started = performance.now();
  const found = await gateways(orchestrator, project);
  for (const container of found) await reload(container, conf, orchestrator);
  saveOverrides(root, project, kept, orchestrator);
  const [of, again, file] = orchestrator === 'swarm' ? [`the stack ${project}`, 'modelfn deploy', FILES.swarmNginx] : [project, 'npm run up', FILES.nginx];
  log(`${name}: traffic ${shares(split)} in force on ${found.length} gateway${found.length > 1 ? 's' : ''} of ${of} (${Math.round(performance.now() - started)} ms)${same ? ', the declared split' : `; kept for ${again} until the traffic declared for ${name} changes (${file} keeps the declared one)`}`);
  return split;
}

/** One container's counters: requests and errors of the function's routes, latency buckets (cumulative, by bound). */
export interface Sample {
  requests: number;
  errors: number;
  buckets: Map<number, number>;
}

const NOT_TRAFFIC = /\/(metrics|stats|health|healthz|ready|live)$/;

/** The counters of a Prometheus text exposition, the function's own routes only. */
export function sampleOf(text: string): Sample {
  const sample: Sample = { requests: 0, errors: 0, buckets: new Map() };
  for (const line of text.split('\n')) {
    const match = /^(modelfn_http_requests_total|modelfn_http_request_duration_seconds_bucket)\{(.*)\} ([0-9.e+-]+|\+Inf)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (NOT_TRAFFIC.test(labels.route ?? '')) continue;
    const value = Number(match[3]);
    if (match[1] === 'modelfn_http_requests_total') {
      sample.requests += value;
      if (Number(labels.status) >= 500) sample.errors += value;
    } else {
      const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
      sample.buckets.set(le, (sample.buckets.get(le) ?? 0) + value);
    }
  }
  return sample;
}

/** The counters of several containers added up (a service's replicas). */
export function sumSamples(samples: readonly Sample[]): Sample {
  const total: Sample = { requests: 0, errors: 0, buckets: new Map() };
  for (const s of samples) {
    total.requests += s.requests;
    total.errors += s.errors;
    for (const [le, n] of s.buckets) total.buckets.set(le, (total.buckets.get(le) ?? 0) + n);
  }
  return total;
}

async function sampleService(orchestrator: Orchestrator, project: string, service: string): Promise<Sample> {
  const samples: Sample[] = [];
  for (const container of await containers(orchestrator, project, service)) {
    const text = await docker(['exec', container, '/usr/local/bin/node', '-e', "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
    samples.push(sampleOf(text));
  }
  return sumSamples(samples);
}

/** A version's figures over a window: requests/s, errors (status >= 500) per second, p99 in ms. */
export interface VersionFigures {
  version: string;
  percent: number;
  requestsPerSecond: number;
  errorsPerSecond: number;
  p99Ms: number | null;
}

/** The requests, errors (status >= 500) and p99 in ms between two samples. */
export function countsBetween(before: Sample, after: Sample): { requests: number; errors: number; p99Ms: number | null } {
  const bounds = [...after.buckets.keys()].sort((a, b) => a - b);
  const cumulative = bounds.map((le) => (after.buckets.get(le) ?? 0) - (before.buckets.get(le) ?? 0));
  const counts = cumulative.map((c, i) => c - (i ? cumulative[i - 1] : 0));
  const le = bounds.filter((b) => b !== Infinity);
  return { requests: after.requests - before.requests, errors: after.errors - before.errors, p99Ms: counts.length ? quantileMs(0.99, le, counts) : null };
}

/** The figures between two samples `seconds` apart. */
export function figuresBetween(before: Sample, after: Sample, seconds: number): Omit<VersionFigures, 'version' | 'percent'> {
  const { requests, errors, p99Ms } = countsBetween(before, after);
  return { requestsPerSecond: round(requests / seconds), errorsPerSecond: round(errors / seconds), p99Ms };
}

const round = (x: number) => Math.round(x * 100) / 100;

/** The split in force on a running gateway, read from the summary line nginx.ts writes above each split. */
export function splitInForce(conf: string, name: string): Split | undefined {
  const line = new RegExp(`^\\s*# ${name}: versions [^;]*; traffic ([^;]*);`, 'm').exec(conf);
  if (!line) return undefined;
  return line[1].split(', ').map((share) => {
    const [version, percent] = share.split(' ');
    return { version, percent: Number(percent.replace('%', '')) };
  });
}

/** The split of a function in force on the project's (first) running gateway. */
export async function liveSplit(project: string, fn: Pick<ResolvedFunction, 'name' | 'versions'>, orchestrator: Orchestrator = 'compose'): Promise<Split> {
  const [gateway] = await gateways(orchestrator, project);
  // nginx -T prints the configuration it runs (the image has no shell, no cat).
  const file = orchestrator === 'swarm' ? GATEWAY_LIVE.swarmFile : GATEWAY_LIVE.file;
  const conf = await docker(['exec', gateway, 'nginx', '-T', '-q', '-c', file]).catch(() => docker(['exec', gateway, 'nginx', '-T', '-q']));
  return splitInForce(conf, fn.name) ?? [{ version: fn.versions[fn.versions.length - 1].version, percent: 100 }];
}

/**
 * `modelfn traffic <name>`: the split in force on the project's gateway and each version's
 * figures over `seconds` (on Swarm, from the versions' tasks on this node).
 */
export async function showTraffic(root: string, project: string, name: string, seconds: number, log: (line: string) => void, options: TrafficOptions = {}): Promise<VersionFigures[]> {
  const orchestrator = options.orchestrator ?? 'compose';
  const { functions } = await discoverFunctions(join(root, 'functions'), readConfig({}));
  const fn = findFunction(functions, name);
  const split = await liveSplit(project, fn, orchestrator);
  const units = deploymentUnits(fn);
  const services = units.map((u) => serviceName(u));
  const before = await Promise.all(services.map((s) => sampleService(orchestrator, project, s)));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = await Promise.all(services.map((s) => sampleService(orchestrator, project, s)));
  const figures = units.map((u, i) => ({ version: u.version, percent: split.find((s) => s.version === u.version)?.percent ?? 0, ...figuresBetween(before[i], after[i], seconds) }));
  const shadow = new Map(fn.shadow.map((s) => [s.version, s.percent]));
  const header = ['version', 'traffic', 'requests/s', 'errors/s', 'p99'];
  const rows = figures.map((f) => [f.version, shadow.get(f.version) ? `shadow ${shadow.get(f.version)}%` : `${f.percent}%`, String(f.requestsPerSecond), String(f.errorsPerSecond), f.p99Ms === null ? '-' : `${f.p99Ms} ms`]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  log(`${name} on ${orchestrator === 'swarm' ? `the stack ${project}` : project}: traffic ${shares(split)} (over the last ${seconds} s)`);
  for (const row of [header, ...rows]) log(line(row));
  return figures;
}
