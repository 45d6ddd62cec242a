/**
 * `npm run bench:overload`: goodput under overload with impatient clients. For each function, in
 * one run: its capacity (closed loop, patient clients), then an open loop at 4x that rate for 10 s
 * from clients that give up after 1 s, then single requests once the load stopped (a backlog
 * left behind would show there). Two functions: iris (batches) and a fixed-shape model that
 * cannot batch and takes a few ms a run (bench/models/tanh-stack.onnx). Under `npm start`, and
 * with `--compose` through the compose gateway too (one replica each, nginx in front).
 *
 * Writes bench/results/overload.md and the overload section of RELIABILITY.md (a `--pin` run:
 * bench/results/overload-pinned.md only).
 *
 *   --compose       also measure through the compose stack (needs the Docker engine)
 *   --compose-only  measure through the compose stack only
 *   --seconds N     seconds of overload (default 10)
 *   --factor N      offered load as a multiple of capacity (default 4)
 *   --give-up MS    the clients' patience (default 1000)
 *   --pin           npm start on CPU 1 alone and this process (the load generator) on CPU 0
 *                   (taskset): the server has one core of its own, the generator another, so
 *                   the generator's own work cannot take the server's CPU (npm start only)
 *
 * Needs /usr/bin/python3 with python3-onnx (Debian) the first time, to generate the model.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../test/docker.ts';
import { closedLoop, openLoop, single, type OpenLoopResult, type Target } from './overload-load.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    compose: { type: 'boolean', default: false },
    'compose-only': { type: 'boolean', default: false },
    seconds: { type: 'string', default: '10' },
    factor: { type: 'string', default: '4' },
    'give-up': { type: 'string', default: '1000' },
    pin: { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const FACTOR = Number(args.factor);
const GIVE_UP = Number(args['give-up']);
const PIN = args.pin;
if (PIN) {
  if (args.compose || args['compose-only']) throw new Error('--pin applies to npm start only (without --compose)');
  // Every thread of this process (the generator) on CPU 0; the server is started on CPU 1.
  const pinned = spawnSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { encoding: 'utf8' });
  if (pinned.status !== 0) throw new Error(`taskset failed: ${pinned.stderr.trim()}`);
}
const CAPACITY_SECONDS = 5;
const CAPACITY_CONCURRENCY = 32;
const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 23)} ${line}\n`);

const MODEL = join(ROOT, 'bench/models/tanh-stack.onnx');
if (!existsSync(MODEL)) {
  log('generating bench/models/tanh-stack.onnx (scripts/models/tanh_stack.py)');
  const made = spawnSync('/usr/bin/python3', [join(ROOT, 'scripts/models/tanh_stack.py')], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error('could not generate the model: install python3-onnx (apt-get install python3-onnx)');
}

// The functions served: iris as it ships (a link: its function.ts imports the runtime by a
// relative path from its real folder), and the fixed-shape model with no code at all.
const work = mkdtempSync(join(tmpdir(), 'modelfn-overload-'));
const functionsDir = join(work, 'functions');
mkdirSync(join(functionsDir, 'tanh-stack'), { recursive: true });
symlinkSync(join(ROOT, 'functions/iris'), join(functionsDir, 'iris'));
copyFileSync(MODEL, join(functionsDir, 'tanh-stack/model.onnx'));

const targets = (base: string): Record<string, Target & { model: string }> => ({
  'iris (batches)': {
    model: 'iris',
    url: `${base}/v2/models/iris/infer`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }),
  },
  'tanh-stack (cannot batch, [1, 1024])': {
    model: 'tanh-stack',
    url: `${base}/v2/models/tanh-stack/infer`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1024], data: Array.from({ length: 1024 }, (_, i) => Math.sin(i)) }] }),
  },
});

async function waitReady(url: string, child?: ChildProcess): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const ok = await Promise.all(['iris', 'tanh-stack'].map((m) => fetch(`${url}/v2/models/${m}/ready`).then((r) => r.ok, () => false)));
    if (ok.every(Boolean)) return;
    if (child && child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url}: the functions did not become ready`);
}

/** Model runs and requests shed so far, from the function's own metrics. */
async function counters(base: string, model: string): Promise<{ runs: number; shed: Record<string, number> }> {
  let text = '';
  for (let attempt = 1; ; attempt++) {
    try {
      text = await (await fetch(`${base}/${model}/metrics`)).text();
      break;
    } catch (err) {
      const port = new URL(base).port;
      log(`metrics of ${model}: attempt ${attempt} failed (${String((err as Error).cause ?? err)}); listening on ${port}: ${spawnSync('sh', ['-c', `ss -ltnp | grep ':${port} ' || echo nothing`], { encoding: 'utf8' }).stdout.trim()}`);
      if (attempt === 10) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  const runs = Number(new RegExp(`modelfn_batch_queue_seconds_count\\{model="${model}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  const shed: Record<string, number> = {};
  for (const m of text.matchAll(/modelfn_requests_shed_total\{model="[^"]+",reason="([^"]+)"\} (\d+)/g)) shed[m[1]] = Number(m[2]);
  return { runs, shed };
}

interface Row {
  deployment: string;
  fn: string;
  capacity: number;
  capacityP50: number;
  overload: OpenLoopResult;
  after: number[];
  /** Requests that reached a model run during the overload, and the shed counts the function reports. */
  runs: number;
  shedByServer: Record<string, number>;
}
const rows: Row[] = [];
let relayNote = '';

async function measure(deployment: string, base: string): Promise<void> {
  for (const [fn, target] of Object.entries(targets(base))) {
    await closedLoop(target, CAPACITY_CONCURRENCY, 2); // warm-up
    const capacity = await closedLoop(target, CAPACITY_CONCURRENCY, CAPACITY_SECONDS);
    log(`${deployment} ${fn}: capacity ${capacity.rps.toFixed(0)} answers/s (p50 ${capacity.p50} ms, ${capacity.errors} errors)`);
    const before = await counters(base, target.model);
    const overload = await openLoop(target, Math.round(capacity.rps * FACTOR), SECONDS, GIVE_UP);
    const after = await counters(base, target.model);
    const shedByServer = Object.fromEntries(Object.entries(after.shed).map(([k, v]) => [k, v - (before.shed[k] ?? 0)]));
    const goodput = overload.inTime / SECONDS;
    log(`${deployment} ${fn}: offered ${overload.offered}/s -> in time ${goodput.toFixed(0)}/s (${((goodput / capacity.rps) * 100).toFixed(0)}% of capacity), shed ${overload.shed}, gave up ${overload.gaveUp}, errors ${overload.errors}, other ${JSON.stringify(overload.other)}`);
    const next = await single(target, 3);
    log(`${deployment} ${fn}: model runs ${after.runs - before.runs}, shed by the server ${JSON.stringify(shedByServer)}; after the load: ${next.join(', ')} ms`);
    rows.push({ deployment, fn, capacity: capacity.rps, capacityP50: capacity.p50, overload, after: next, runs: after.runs - before.runs, shedByServer });
    // Let clients' abandoned connections settle before the next function.
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function underNpmStart(): Promise<void> {
  const port = await freePort();
  const command = [process.execPath, join(ROOT, 'bin/modelfn.mjs'), 'start', '--functions', functionsDir, '--port', String(port)];
  const [file, ...words] = PIN ? ['taskset', '-c', '1', ...command] : command;
  const child = spawn(file, words, {
    cwd: ROOT,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, MODELFN_LOG_LEVEL: 'warn' },
  });
  try {
    await waitReady(`http://127.0.0.1:${port}`, child);
    await measure(PIN ? 'npm start (pinned)' : 'npm start', `http://127.0.0.1:${port}`);
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
}

async function throughCompose(): Promise<void> {
  const port = await freePort();
  const project = `modelfn-overload-${process.pid}`;
  const env = { ...process.env, MODELFN_PORT: String(port), MODELFN_PROJECT: project, MODELFN_IMAGE_TAG: `overload-${process.pid}` };
  // `modelfn up` in the scratch folder: its functions/, and the runtime linked beside them.
  symlinkSync(join(ROOT, 'runtime'), join(work, 'runtime'));
  const cli = (...words: string[]) => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/modelfn.mjs'), ...words], { cwd: work, env, stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`modelfn ${words.join(' ')} failed`);
  };
  cli('up');
  try {
    await waitReady(`http://127.0.0.1:${port}`);
    // Who relays the published port: Docker's userland proxy (a process per port), or iptables NAT.
    const relay = spawnSync('sh', ['-c', `ss -ltnp | grep ':${port} ' | grep -o 'docker-proxy' | head -1`], { encoding: 'utf8' }).stdout.trim();
    relayNote = relay ? "the published port relayed by Docker's userland proxy (docker-proxy, the engine's default)" : 'the published port relayed by iptables NAT (dockerd --userland-proxy=false)';
    await measure('compose gateway', `http://127.0.0.1:${port}`);
  } catch (err) {
    // What the stack says of itself before it goes down.
    spawnSync('docker', ['ps', '-a', '--filter', `label=com.docker.compose.project=${project}`, '--format', '{{.Names}} {{.Status}}'], { stdio: 'inherit' });
    spawnSync('sh', ['-c', `docker logs --tail 20 $(docker ps -aq --filter label=com.docker.compose.project=${project} --filter label=com.docker.compose.service=gateway) 2>&1`], { stdio: 'inherit' });
    throw err;
  } finally {
    cli('down');
    // The images this run built (tagged with its own tag).
    const images = spawnSync('docker', ['images', '-q', '--filter', `reference=*:${env.MODELFN_IMAGE_TAG}`], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    if (images.length) spawnSync('docker', ['rmi', '-f', ...new Set(images)], { stdio: 'ignore' });
  }
}

const started = new Date();
try {
  if (!args['compose-only']) await underNpmStart();
  if (args.compose || args['compose-only']) await throughCompose();
} finally {
  rmSync(work, { recursive: true, force: true });
}

const pct = (a: number, b: number) => `${((a / b) * 100).toFixed(0)}%`;
const command = `npm run bench:overload${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const table = [
  `Generated by \`${command}\` on ${started.toISOString()} (this machine: 2 cores; the load generator runs on the same machine).`,
  ...(relayNote ? [`Compose gateway: ${relayNote}.`] : []),
  ...(PIN ? ['Pinned (`--pin`): npm start on CPU 1 alone, the load generator on CPU 0 (taskset); capacity and overload are both measured so.'] : []),
  `Capacity: ${CAPACITY_CONCURRENCY} patient clients for ${CAPACITY_SECONDS} s (closed loop). Overload: ${FACTOR}x that rate for ${SECONDS} s (open loop), every client giving up after ${GIVE_UP} ms and closing its connection. Goodput: 2xx answers that arrived within ${GIVE_UP} ms, per second of load.`,
  '',
  '| deployment | function | capacity answers/s | offered requests/s | goodput answers/s | goodput / capacity | shed (429/503) | shed without Retry-After | gave up | other answers | connection errors | answers p50 / p99 ms | refusals p50 / p99 ms | requests that reached a model run (of them not answered in time) | dropped by the server before a run | next requests after the load, ms |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ...rows.map((r) => {
    const good = r.overload.inTime / SECONDS;
    const other = Object.entries(r.overload.other).map(([s, n]) => `${n} x ${s}`).join(', ') || '0';
    return `| ${r.deployment} | ${r.fn} | ${r.capacity.toFixed(0)} | ${r.overload.offered.toFixed(0)} | ${good.toFixed(0)} | ${pct(good, r.capacity)} | ${r.overload.shed} | ${r.overload.shedWithoutRetryAfter} | ${r.overload.gaveUp} | ${other} | ${r.overload.errors} | ${r.overload.answered.p50} / ${r.overload.answered.p99} | ${r.overload.refused.p50} / ${r.overload.refused.p99} | ${r.runs} (${Math.max(0, r.runs - r.overload.inTime)}) | ${Object.entries(r.shedByServer).map(([k, v]) => `${v} ${k}`).join(', ') || '0'} | ${r.after.join(', ')} |`;
  }),
  '',
];
mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
writeFileSync(join(ROOT, `bench/results/overload${PIN ? '-pinned' : ''}.md`), ['# Overload: goodput with impatient clients', '', ...table].join('\n'));
// A pinned run is a diagnosis (what the shared CPU costs); RELIABILITY.md keeps the plain run.
if (PIN) {
  log(table.join('\n'));
  process.exit(0);
}

// The same table in RELIABILITY.md, between its markers.
const reliability = join(ROOT, 'RELIABILITY.md');
const text = readFileSync(reliability, 'utf8');
const begin = '<!-- overload:begin (written by bench/overload.ts) -->';
const end = '<!-- overload:end -->';
const at = text.indexOf(begin);
const section = `${begin}\n${table.join('\n')}${end}`;
writeFileSync(reliability, at >= 0 ? text.slice(0, at) + section + text.slice(text.indexOf(end) + end.length) : `${text.trimEnd()}\n\n## Overload\n\n${section}\n`);
log(table.join('\n'));
