/**
 * `npm run bench`: modelfn through its gateway (nginx and compose), in embedded mode and at the
 * in-process limit, side by side with the classic Flask + gunicorn + nginx stack, both as its
 * article deploys it (two containers in Docker Compose) and natively, in one run on this
 * machine. Writes BENCHMARKS.md.
 *
 *   npm run bench                  full run (about 11 minutes on 2 cores)
 *   npm run bench -- --quick       short runs, to check the harness
 *   --seconds N  --repeat N  --skip-compose
 *
 * Needs wrk, nginx, gunicorn, python3-flask, python3-sklearn, python3-onnx (installed with
 * apt-get when missing and running as root) and, for the compose rows, a Docker engine (the
 * classic stack's Python image comes from scripts/base-images.sh --classic when it cannot be
 * pulled).
 */
import { cpus, freemem, totalmem } from 'node:os';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { currentFloorSection, withFloorSection } from './floor/section.ts';
import { runBuild } from '../build.ts';
import { ROOT, functionImage, imageSizes, run, runtimeImage } from '../builder/docker/images.ts';
import { compose as composeCommand } from '../builder/docker/compose.ts';
import { freePort } from '../test/docker.ts';
import { measureLimit, type LimitResult } from './limit.ts';
import { measureWakes, wakeSection, writeWakeSection } from './wake.ts';
import { analysisSection } from './analysis.ts';
import { wrk, type LoadRequest, type LoadResult } from './wrk.ts';
import { CORES, classicNative, classicNginxConfig, gatewayStack, linkedFunctions, placeMlpModel, rowsData, startProcess, stopProcess, waitOk } from './stacks.ts';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    seconds: { type: 'string' },
    repeat: { type: 'string' },
    'skip-compose': { type: 'boolean', default: false },
  },
});
const QUICK = args.quick!;
const SECONDS = Number(args.seconds ?? (QUICK ? 1 : 4));
const REPEAT = Number(args.repeat ?? (QUICK ? 1 : 3));
const CONCURRENCY = [1, 64];
const ROWS = [1, 32];
const WORK = join(ROOT, 'dist/bench');
const log = (line: string) => process.stdout.write(`${line}\n`);

const MODELS = {
  iris: { features: 4, dir: join(ROOT, 'functions/iris'), flask: 'iris' },
  mlp: { features: 784, dir: join(ROOT, 'bench/functions/mlp'), flask: 'mlp' },
  'mlp-nobatch': { features: 784, dir: join(ROOT, 'bench/functions/mlp-nobatch'), flask: undefined },
} as const;
type ModelName = keyof typeof MODELS;

// ---------------------------------------------------------------- set-up

async function prerequisites(): Promise<void> {
  const missing: string[] = [];
  const has = async (cmd: string, args: string[]) => run(cmd, args).then(() => true, () => false);
  if (!(await has('wrk', ['--version']).catch(() => false)) && !existsSync('/usr/bin/wrk')) missing.push('wrk');
  if (!existsSync('/usr/sbin/nginx')) missing.push('nginx');
  if (!(await has('/usr/bin/python3', ['-c', 'import flask, sklearn, onnx, gunicorn']))) missing.push('python3-flask', 'python3-sklearn', 'python3-onnx', 'gunicorn');
  if (missing.length) {
    if (process.getuid?.() !== 0) throw new Error(`missing: apt-get install ${missing.join(' ')}`);
    log(`installing ${missing.join(' ')}`);
    await run('apt-get', ['install', '-y', '-qq', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (!existsSync(join(ROOT, 'bench/models/mlp.onnx'))) {
    log('generating bench/models/mlp.onnx (scripts/models/mlp.py)');
    await run('/usr/bin/python3', [join(ROOT, 'scripts/models/mlp.py')]);
  }
  placeMlpModel();
}

/** A functions folder for the bench: links to the real function folders. */
function benchFunctions(): string {
  return linkedFunctions(join(WORK, 'functions'), Object.fromEntries(Object.entries(MODELS).map(([name, m]) => [name, m.dir])));
}

const IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.9, 5.6, 1.8]];
function instances(model: ModelName, rows: number): number[][] {
  return model === 'iris' ? Array.from({ length: rows }, (_, i) => IRIS_ROWS[i % IRIS_ROWS.length]) : rowsData(MODELS[model].features, rows);
}

function jsonInfer(base: string, model: ModelName, rows: number): LoadRequest {
  const data = instances(model, rows);
  return {
    url: `${base}/v2/models/${model}/infer`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, MODELS[model].features], data: data.flat() }] }),
  };
}

function binaryInfer(base: string, model: ModelName, rows: number): LoadRequest {
  const values = Float32Array.from(instances(model, rows).flat());
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, MODELS[model].features], parameters: { binary_data_size: values.byteLength } }],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  }));
  return {
    url: `${base}/v2/models/${model}/infer`,
    headers: { 'Content-Type': 'application/octet-stream', 'Inference-Header-Content-Length': String(header.length) },
    body: Buffer.concat([header, Buffer.from(values.buffer)]),
  };
}

function flaskPredict(base: string, model: ModelName, rows: number): LoadRequest {
  return { url: `${base}/${MODELS[model].flask}/predict`, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instances: instances(model, rows) }) };
}

// ---------------------------------------------------------------- processes

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN) / 1024;
}

/** Resident memory of a process and its children (gunicorn's workers, nginx's). */
async function treeRssMb(pid: number): Promise<number> {
  const out = await run('ps', ['-o', 'rss=', '--ppid', String(pid)]).catch(() => '');
  return rssMb(pid) + out.split('\n').filter(Boolean).reduce((n, v) => n + Number(v) / 1024, 0);
}

async function containerMemMb(id: string): Promise<number> {
  const out = (await run('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', id])).trim();
  const m = /^([\d.]+)([KMG]i?B)/.exec(out);
  if (!m) return NaN;
  const scale: Record<string, number> = { KiB: 1 / 1024, KB: 1 / 1000, MiB: 1, MB: 1, GiB: 1024, GB: 1000 };
  return Number(m[1]) * (scale[m[2]] ?? 1);
}

/** CPU ticks used so far by every process on the machine, by pid, with its name. */
function cpuTicks(): Map<number, { name: string; ticks: number }> {
  const ticks = new Map<number, { name: string; ticks: number }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(Number(entry), { name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks;
}

/**
 * Where the CPU goes while `load` runs: percent of one core per process name (wrk, docker-proxy,
 * nginx, node...), from /proc, measured until just before the load ends so that wrk still counts.
 */
async function cpuDuring(load: () => Promise<unknown>): Promise<{ name: string; percent: number }[]> {
  const before = cpuTicks();
  const t0 = performance.now();
  const running = load();
  await new Promise((r) => setTimeout(r, SECONDS * 1000 - 300));
  const after = cpuTicks();
  const elapsed = (performance.now() - t0) / 1000;
  await running;
  const byName = new Map<string, number>();
  for (const [pid, { name, ticks }] of after) {
    const used = ticks - (before.get(pid)?.ticks ?? 0);
    if (used > 0) byName.set(name, (byName.get(name) ?? 0) + used);
  }
  const hz = 100; // USER_HZ on Linux
  return [...byName].map(([name, t]) => ({ name, percent: (t / hz / elapsed) * 100 })).sort((a, b) => b.percent - a.percent).filter((p) => p.percent >= 1);
}

const cpuShares: { name: string; percent: number }[] = [];

// ---------------------------------------------------------------- measuring

interface Row { target: string; model: ModelName; form: string; rows: number; concurrency: number; result: LoadResult }
const results: Row[] = [];
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function measure(target: string, model: ModelName, form: string, rows: number, concurrency: number, request: LoadRequest): Promise<LoadResult> {
  const name = `${target}-${model}-${form}-${rows}-${concurrency}`.replace(/[^a-z0-9-]/gi, '_');
  // Warm-up, then REPEAT runs; the median run (by requests per second) is kept.
  await wrk(request, concurrency, 1, WORK, name);
  const runs: LoadResult[] = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await wrk(request, concurrency, SECONDS, WORK, name));
  const mid = median(runs.map((r) => r.rps));
  const result = { ...runs.find((r) => r.rps === mid)!, errors: runs.reduce((n, r) => n + r.errors, 0) };
  results.push({ target, model, form, rows, concurrency, result });
  log(`  ${target.padEnd(18)} ${model.padEnd(12)} ${form.padEnd(7)} rows ${String(rows).padStart(2)} c${String(concurrency).padEnd(3)} ${result.rps.toFixed(0).padStart(7)} req/s  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms${result.errors ? `  ERRORS ${result.errors}` : ''}`);
  return result;
}

/** Every model, form and concurrency; JSON with one row per request, binary with 1 and 32 (`rowsList`). */
async function matrix(target: string, models: ModelName[], forms: Record<string, (model: ModelName, rows: number) => LoadRequest>, rowsList = ROWS): Promise<void> {
  for (const model of models) {
    for (const [form, make] of Object.entries(forms)) {
      for (const rows of form === 'json' ? [1] : rowsList) {
        for (const c of CONCURRENCY) await measure(target, model, form, rows, c, make(model, rows));
      }
    }
  }
}

const memory: Record<string, number> = {};
const coldStarts: Record<string, number[]> = {};

const CLASSIC_NATIVE = 'classic native';
const CLASSIC_COMPOSE = 'classic compose';
const EMBEDDED = 'modelfn embedded';
const GATEWAY = 'modelfn gateway';

async function flaskStack(): Promise<void> {
  log('\nclassic stack, native: Flask + gunicorn (workers = cores) behind nginx');
  const classic = await classicNative(WORK, log);
  try {
    memory['flask: gunicorn workers, idle'] = await treeRssMb(classic.gunicornPid);
    await matrix(CLASSIC_NATIVE, ['iris', 'mlp'], { json: (m, r) => flaskPredict(classic.url, m, r) });
    memory['flask: gunicorn workers, after load'] = await treeRssMb(classic.gunicornPid);
  } finally {
    await classic.stop();
  }
}

/**
 * The classic stack as its article deploys it: the Flask + gunicorn container behind an nginx
 * container in Docker Compose (bench/flask/Dockerfile and docker-compose.yml), published on a
 * loopback port, gunicorn with as many workers as natively.
 */
async function classicCompose(): Promise<void> {
  log('\nclassic stack in Docker Compose: a Flask + gunicorn container behind an nginx container');
  const images = await run('bash', [join(ROOT, 'scripts/base-images.sh'), '--classic']);
  if (images.trim()) log(images.trim().split('\n').map((l) => `  ${l}`).join('\n'));
  const dir = join(WORK, 'classic');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'models'), { recursive: true });
  for (const file of ['app.py', 'Dockerfile', 'docker-compose.yml']) copyFileSync(join(ROOT, 'bench/flask', file), join(dir, file));
  copyFileSync(join(MODELS.iris.dir, 'model.onnx'), join(dir, 'models/iris.onnx'));
  copyFileSync(join(ROOT, 'bench/models/mlp.onnx'), join(dir, 'models/mlp.onnx'));
  writeFileSync(join(dir, 'nginx.conf'), classicNginxConfig('80', 'flask:8000', '/tmp'));
  const port = await freePort();
  const env = { ...process.env, CLASSIC_PORT: String(port), GUNICORN_WORKERS: String(CORES) };
  const [command, ...prefix] = composeCommand();
  const dc = (args: string[]) => run(command, [...prefix, '-p', 'modelfn-bench-classic', '-f', join(dir, 'docker-compose.yml'), ...args], { env });
  await dc(['up', '-d', '--build']);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitOk(`${base}/iris/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"instances":[[1,2,3,4]]}' }, 120_000);
    await matrix(CLASSIC_COMPOSE, ['iris', 'mlp'], { json: (m, r) => flaskPredict(base, m, r) });
  } finally {
    await dc(['down', '-v', '--remove-orphans']).catch((err) => log(`  ! classic compose down: ${(err as Error).message}`));
  }
}

async function embedded(functionsDir: string): Promise<void> {
  log('\nmodelfn embedded (npm start: one process, every function)');
  const port = await freePort();
  const server = startProcess(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), 'start', '--functions', functionsDir, '--port', String(port)], {
    MODELFN_ACCESS_LOG: 'false',
  }, log);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitOk(`${base}/v2/models/mlp/ready`);
    await matrix(EMBEDDED, ['iris', 'mlp'], {
      json: (m, r) => jsonInfer(base, m, r),
      binary: (m, r) => binaryInfer(base, m, r),
    });
    await matrix(EMBEDDED, ['mlp-nobatch'], { json: (m, r) => jsonInfer(base, m, r), binary: (m, r) => binaryInfer(base, m, r) }, [1]);
  } finally {
    await stopProcess(server);
  }
}

async function compose(functionsDir: string): Promise<void> {
  log('\nmodelfn gateway: nginx and one container per function, in compose');
  const stack = await gatewayStack(functionsDir, WORK, 'modelfn-bench', Object.keys(MODELS));
  const base = stack.url;
  try {
    const container = (await run('docker', ['ps', '-q', '--filter', 'label=com.docker.compose.project=modelfn-bench', '--filter', 'label=com.docker.compose.service=iris'])).trim().split('\n')[0];
    memory['modelfn iris container, idle (docker stats)'] = await containerMemMb(container);
    await matrix(GATEWAY, ['iris', 'mlp'], {
      json: (m, r) => jsonInfer(base, m, r),
      binary: (m, r) => binaryInfer(base, m, r),
    });
    memory['modelfn iris container, after load (docker stats)'] = await containerMemMb(container);
    cpuShares.push(...(await cpuDuring(() => wrk(jsonInfer(base, 'iris', 1), 64, SECONDS, WORK, 'cpu'))));
    await matrix(GATEWAY, ['mlp-nobatch'], { json: (m, r) => jsonInfer(base, m, r), binary: (m, r) => binaryInfer(base, m, r) }, [1]);
    await coldStartContainer();
  } finally {
    await stack.stop();
  }
}

/** Container start to first successful inference, iris. */
async function coldStartContainer(): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < (QUICK ? 2 : 5); i++) {
    const port = await freePort();
    const id = (await run('docker', ['create', '--init', '--read-only', '--tmpfs', '/tmp', '--cap-drop', 'ALL', '-p', `127.0.0.1:${port}:8080`, functionImage('iris', 'bench')])).trim();
    const request = jsonInfer(`http://127.0.0.1:${port}`, 'iris', 1);
    const t0 = performance.now();
    await run('docker', ['start', id]);
    await waitOk(request.url, { method: 'POST', headers: request.headers, body: request.body as string }, 30_000);
    times.push(performance.now() - t0);
    await run('docker', ['rm', '-f', id]);
  }
  coldStarts['container start → first inference (iris)'] = times;
}

/** Process start to first inference, and the idle and loaded memory of one function process. */
async function processStart(): Promise<void> {
  log('\none function process (the bundle each container runs)');
  const bundle = join(WORK, 'dist/iris/main.mjs');
  if (!existsSync(bundle)) await runBuild({ functionsDir: benchFunctions(), outDir: join(WORK, 'dist'), root: join(WORK, 'stack'), images: false, check: false, log: () => {} });
  const times: number[] = [];
  for (let i = 0; i < (QUICK ? 2 : 5); i++) {
    const port = await freePort();
    const request = jsonInfer(`http://127.0.0.1:${port}`, 'iris', 1);
    const t0 = performance.now();
    const child = startProcess(process.execPath, [bundle], { PORT: String(port), MODELFN_ACCESS_LOG: 'false' }, log);
    await waitOk(request.url, { method: 'POST', headers: request.headers, body: request.body as string }, 30_000);
    times.push(performance.now() - t0);
    if (i === 0) {
      await new Promise((r) => setTimeout(r, 2000));
      memory['modelfn iris process, idle (RSS)'] = rssMb(child.pid!);
      await wrk(request, 64, SECONDS, WORK, 'rss');
      memory['modelfn iris process, after load at c64 (RSS)'] = rssMb(child.pid!);
    }
    await stopProcess(child);
  }
  coldStarts['process start → first inference (iris)'] = times;
}

/** A CPU profile of one function process under the iris c64 JSON load: where the time goes. */
async function profile(): Promise<string[]> {
  const bundle = join(WORK, 'dist/iris/main.mjs');
  const dir = join(WORK, 'profile');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const request = jsonInfer(`http://127.0.0.1:${port}`, 'iris', 1);
  const child = startProcess(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, bundle], { PORT: String(port), MODELFN_ACCESS_LOG: 'false' }, log);
  await waitOk(request.url, { method: 'POST', headers: request.headers, body: request.body as string });
  await wrk(request, 64, SECONDS, WORK, 'profile');
  await stopProcess(child, 'SIGINT');
  const file = (await run('ls', [dir])).trim().split('\n').find((f) => f.endsWith('.cpuprofile'));
  if (!file) return ['(no profile written)'];
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[]; samples: number[]; timeDeltas: number[] };
  const time = new Map<number, number>();
  p.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...time.values()].reduce((a, b) => a + b, 0);
  const self = new Map<string, number>();
  for (const n of p.nodes) {
    const where = n.callFrame.url ? `${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${n.callFrame.functionName || '(anonymous)'} ${where}`.trim();
    self.set(key, (self.get(key) ?? 0) + (time.get(n.id) ?? 0));
  }
  return [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `| ${(v / total * 100).toFixed(1)}% | \`${k}\` |`);
}

// ---------------------------------------------------------------- report

function find(target: string, model: ModelName, form: string, rows: number, c: number): LoadResult | undefined {
  return results.find((r) => r.target === target && r.model === model && r.form === form && r.rows === rows && r.concurrency === c)?.result;
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? 'not measured' : ok ? '**met**' : '**missed**';
}

async function report(limits: Record<string, LimitResult>, profileRows: string[], started: Date): Promise<string> {
  const machine = [
    `- CPU: ${cpus()[0]?.model ?? 'unknown'}, ${CORES} cores; memory ${(totalmem() / 1024 ** 3).toFixed(1)} GiB (${(freemem() / 1024 ** 3).toFixed(1)} GiB free at the end)`,
    `- Node ${process.version}, onnxruntime-node ${JSON.parse(readFileSync(join(ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8')).version}, ${(await run('uname', ['-sr'])).trim()}`,
    `- Docker: ${(await run('docker', ['version', '--format', '{{.Server.Version}}']).catch(() => 'none')).trim()}; load generator: wrk (1 thread) on the same machine`,
    `- Run started ${started.toISOString()}; each figure is the median of ${REPEAT} runs of ${SECONDS} s after a 1 s warm-up (the machine is shared and noisy: compare within this run)`,
  ];
  const table = (rows: Row[]) => [
    '| target | model | form | rows/request | concurrency | requests/s | rows/s | p50 ms | p99 ms | errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.target} | ${r.model} | ${r.form} | ${r.rows} | ${r.concurrency} | ${r.result.rps.toFixed(0)} | ${(r.result.rps * r.rows).toFixed(0)} | ${r.result.p50.toFixed(2)} | ${r.result.p99.toFixed(2)} | ${r.result.errors} |`),
  ];
  const ratio = (a?: number, b?: number) => (a !== undefined && b ? a / b : undefined);
  const fmt = (x?: number, digits = 2) => (x === undefined || Number.isNaN(x) ? 'n/a' : x.toFixed(digits));
  const rps = (target: string, model: ModelName, c = 64) => find(target, model, 'json', 1, c)?.rps;
  const p50 = (target: string, model: ModelName) => find(target, model, 'json', 1, 1)?.p50;
  /** One target row: a ratio of requests/s at 64 connections, JSON, one row per request. */
  const ratioRow = (what: string, model: ModelName, a: string, b: string, goal: number) => {
    const r = ratio(rps(a, model), rps(b, model));
    return `| ${what} | ≥ ${goal < 1 ? `${goal * 100}%` : `${goal}×`} | ${fmt(rps(a, model), 0)} vs ${fmt(rps(b, model), 0)} = ${goal < 1 ? `${fmt(r === undefined ? undefined : r * 100, 0)}%` : `${fmt(r)}×`} | ${verdict(r === undefined ? undefined : r >= goal)} |`;
  };
  const gw1 = p50(GATEWAY, 'iris');
  const emb1 = p50(EMBEDDED, 'iris');
  const mlp32 = find(GATEWAY, 'mlp', 'binary', 32, 64);
  const cold = coldStarts['container start → first inference (iris)'];
  const idle = memory['modelfn iris process, idle (RSS)'];
  const targets = [
    ratioRow('iris, c64: gateway vs classic stack in compose', 'iris', GATEWAY, CLASSIC_COMPOSE, 3),
    ratioRow('iris, c64: gateway vs classic stack native', 'iris', GATEWAY, CLASSIC_NATIVE, 2),
    ratioRow('iris, c64: gateway vs embedded mode', 'iris', GATEWAY, EMBEDDED, 0.4),
    `| iris, c1: gateway median latency vs embedded median + 0.2 ms | ≤ ${fmt(emb1 === undefined ? undefined : emb1 + 0.2)} ms | ${fmt(gw1)} ms (embedded ${fmt(emb1)} ms: +${fmt(gw1 !== undefined && emb1 !== undefined ? gw1 - emb1 : undefined)} ms) | ${verdict(gw1 !== undefined && emb1 !== undefined ? gw1 <= emb1 + 0.2 : undefined)} |`,
    ratioRow('MLP 784-1024-1024-10, one row per request, c64: gateway vs classic stack in compose', 'mlp', GATEWAY, CLASSIC_COMPOSE, 5),
    ratioRow('iris, c64: embedded mode vs classic stack native', 'iris', EMBEDDED, CLASSIC_NATIVE, 5),
    ratioRow('MLP, one row per request, c64: embedded mode vs classic stack native', 'mlp', EMBEDDED, CLASSIC_NATIVE, 10),
    `| (reference) MLP, c64, 32-row binary requests through the gateway: rows/s vs in-process limit at batch 32 | | ${fmt(mlp32 ? mlp32.rps * 32 : undefined, 0)} vs ${fmt(limits['mlp/32']?.rowsPerSecond, 0)} = ${fmt(ratio(mlp32 ? mlp32.rps * 32 : undefined, limits['mlp/32']?.rowsPerSecond))}× | |`,
    `| (earlier target) container cold start to first inference, iris (median of ${cold?.length ?? 0}) | ≤ 500 ms | ${fmt(cold ? median(cold) : undefined, 0)} ms | ${verdict(cold ? median(cold) <= 500 : undefined)} |`,
    `| (earlier target) resident memory of an idle function process (iris) | ≤ 80 MB | ${fmt(idle, 1)} MB | ${verdict(idle === undefined ? undefined : idle <= 80)} |`,
  ];
  // Side by side: every way to serve the same weights, JSON, one row per request.
  const sideBySide = (model: ModelName) => {
    const limit = limits[`${model}/1`];
    const line = (name: string, target: string) => `| ${model} | ${name} | ${fmt(rps(target, model), 0)} | ${fmt(ratio(rps(GATEWAY, model), rps(target, model)))}× | ${fmt(p50(target, model))} |`;
    return [
      line('classic stack in compose (nginx + Flask/gunicorn containers)', CLASSIC_COMPOSE),
      line('classic stack native (nginx + gunicorn processes)', CLASSIC_NATIVE),
      line('modelfn gateway (nginx + function containers, compose)', GATEWAY),
      line('modelfn embedded (one process, no nginx, no Docker)', EMBEDDED),
      `| ${model} | in-process limit (session.run, batch 1, one thread) | ${fmt(limit?.rowsPerSecond, 0)} | ${fmt(ratio(rps(GATEWAY, model), limit?.rowsPerSecond))}× | ${fmt(limit?.p50, 3)} |`,
    ];
  };
  return [
    '# Benchmarks',
    '',
    'Written by `npm run bench` (bench/run.ts). Do not edit by hand; rerun it. The reading of the figures',
    'is pasted from bench/ANALYSIS.md: edit it there, then `npm run bench:analysis`.',
    '',
    '## Machine',
    '',
    ...machine,
    '',
    '## Commands',
    '',
    '```sh',
    `npm run bench${QUICK ? ' -- --quick' : ''}`,
    `# load: wrk -t1 -c{1,64} -d${SECONDS}s --latency -s <body.lua> <url>`,
    '# classic native: gunicorn -w <cores> bench/flask/app.py behind nginx (bench/flask/nginx.conf)',
    '# classic compose: scripts/base-images.sh --classic; docker compose -f bench/flask/docker-compose.yml up -d --build',
    '# modelfn embedded: modelfn start --functions <iris, mlp, mlp-nobatch>',
    '# modelfn gateway: npm run build -- --images; docker compose up (nginx gateway + one container per function)',
    '```',
    '',
    '## Targets',
    '',
    '| target | goal | measured | verdict |',
    '| --- | --- | --- | --- |',
    ...targets,
    '',
    '## Side by side',
    '',
    'JSON, one row per request: requests/s at 64 connections, and the median latency at 1 connection.',
    '',
    '| model | how it is served | requests/s, c64 | gateway is | p50 ms, c1 |',
    '| --- | --- | --- | --- | --- |',
    ...sideBySide('iris'),
    ...sideBySide('mlp'),
    '',
    '## The limit: in-process session.run',
    '',
    '| model | batch | p50 ms per run | rows/s |',
    '| --- | --- | --- | --- |',
    ...Object.entries(limits).map(([k, l]) => `| ${k.split('/')[0]} | ${l.rows} | ${l.p50.toFixed(3)} | ${l.rowsPerSecond.toFixed(0)} |`),
    '',
    '## Load',
    '',
    'JSON is the protocol\'s JSON form (`/v2/models/<name>/infer`; Flask takes `{"instances": ...}`),',
    'binary is the binary tensor extension (FP32 bytes in, bytes out).',
    '',
    ...table(results),
    '',
    '## Cold start',
    '',
    '| what | runs (ms) | median |',
    '| --- | --- | --- |',
    ...Object.entries(coldStarts).map(([k, v]) => `| ${k} | ${v.map((t) => t.toFixed(0)).join(', ')} | ${median(v).toFixed(0)} ms |`),
    '',
    '## Memory',
    '',
    '| what | MB |',
    '| --- | --- |',
    ...Object.entries(memory).map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`),
    '',
    '## Where the time goes',
    '',
    `CPU per process while wrk -c64 sends iris JSON requests through the gateway (${SECONDS} s, percent of one core; 200% is the whole machine):`,
    '',
    '| process | CPU |',
    '| --- | --- |',
    ...cpuShares.map((p) => `| ${p.name} | ${p.percent.toFixed(0)}% |`),
    '',
    `\`node --cpu-prof\` of one iris function process under wrk -c64 (JSON, ${SECONDS} s); self time:`,
    '',
    '| share | function |',
    '| --- | --- |',
    ...profileRows,
    '',
    // The reading of these figures (why targets are missed, what was tried) is kept by hand, in one place.
    analysisSection(),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------- main

const startedAt = new Date();
mkdirSync(WORK, { recursive: true });
await prerequisites();
const functionsDir = benchFunctions();
const limits: Record<string, LimitResult> = {};
log('the limit: in-process session.run');
for (const model of ['iris', 'mlp'] as const) {
  for (const rows of ROWS) {
    limits[`${model}/${rows}`] = await measureLimit(join(MODELS[model].dir, 'model.onnx'), MODELS[model].features, rows, QUICK ? 1 : 3);
    log(`  ${model} batch ${rows}: p50 ${limits[`${model}/${rows}`].p50.toFixed(3)} ms, ${limits[`${model}/${rows}`].rowsPerSecond.toFixed(0)} rows/s`);
  }
}
await flaskStack();
if (!args['skip-compose']) {
  // A failure here leaves the classic compose rows out of the report, not the whole run.
  await classicCompose().catch((err) => log(`  ! classic stack in compose failed: ${(err as Error).message}`));
}
await embedded(functionsDir);
if (!args['skip-compose']) await compose(functionsDir);
await processStart();
const profileRows = await profile();
if (!args['skip-compose']) {
  const runtime = await imageSizes(runtimeImage());
  memory['(image) modelfn runtime base, MB on disk'] = runtime.total / 1e6;
}
let text = await report(limits, profileRows, startedAt);
// The floor's section (npm run bench:floor) is measured apart: carried over as it is.
const floor = existsSync(join(ROOT, 'BENCHMARKS.md')) ? currentFloorSection(readFileSync(join(ROOT, 'BENCHMARKS.md'), 'utf8')) : undefined;
if (floor) text = withFloorSection(text, floor);
writeFileSync(join(ROOT, 'BENCHMARKS.md'), text);
log('\nwrote BENCHMARKS.md');
if (!args['skip-compose']) {
  const wake = await measureWakes(QUICK ? 2 : 7, QUICK ? 4 : 20);
  writeWakeSection(wakeSection(wake, `npm run bench${QUICK ? ' -- --quick' : ''}`));
  log('wrote the "Scale to zero" section of BENCHMARKS.md');
}
