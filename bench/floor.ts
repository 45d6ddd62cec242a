/**
 * `npm run bench:floor`: the request path against its floor, in one run. Bare `node:http` and
 * bare Hono doing the same JSON in and out (bench/floor/), and `npm start` with its default
 * settings (iris through the protocol route and `/predict`), each with wrk's own headers and
 * with a real client's (`Accept-Encoding: gzip, deflate`, `Accept: *\/*`, a User-Agent):
 * requests/s at 64 connections, p50 at one connection, and the server's CPU per request.
 * Besides (unless --skip-stacks): the wide MLP (784-1024-1024-10), one row per request, under
 * `npm start`; the classic stack run natively (Flask + gunicorn behind nginx, bench/stacks.ts:
 * iris and the MLP at its `/predict`); modelfn's compose gateway (iris and the MLP through nginx
 * and the function containers). The issue's goals are checked against these rows.
 * Rounds alternate the order of the servers, so drift on a shared machine falls on all.
 * Writes bench/results/floor.md and, when it measured this tree, pastes it into BENCHMARKS.md
 * (bench/floor/section.ts; `npm run bench` keeps the section).
 *
 *   --rounds N   measured rounds (default 3)
 *   --seconds N  seconds per run (default 6), after a 2 s warm-up
 *   --tree DIR   the source tree whose `npm start` is measured (default this one; e.g. a
 *                `git archive` of an earlier commit with node_modules linked in)
 *   --out FILE   report file (default bench/results/floor.md)
 *   --skip-stacks  only the node processes (no classic stack, no compose gateway)
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../builder/docker/images.ts';
import { freePort } from '../test/docker.ts';
import { floorSection, withFloorSection } from './floor/section.ts';
import { median, stop } from './server-process.ts';
import { classicNative, classicStackInstalled, gatewayStack, linkedFunctions, placeMlpModel, rowsData, treeCpuSeconds, type RunningStack } from './stacks.ts';
import { REAL_CLIENT_HEADERS, wrk, type LoadRequest } from './wrk.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    tree: { type: 'string', default: ROOT },
    out: { type: 'string', default: join(ROOT, 'bench/results/floor.md') },
    'skip-stacks': { type: 'boolean', default: false },
  },
});
const TREE = resolve(args.tree!);
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const WORK = mkdtempSync(join(tmpdir(), 'modelfn-floor-'));
const log = (line: string) => process.stdout.write(`${line}\n`);

const HEADERS: Record<string, Record<string, string>> = { "wrk's headers": {}, "a real client's headers": REAL_CLIENT_HEADERS };

const INFER = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] });
const PREDICT = JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] });
const MLP_ROW = rowsData(784, 1);
const MLP_INFER = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: MLP_ROW.flat() }] });
const MLP_PREDICT = JSON.stringify({ instances: MLP_ROW });
const STACKS = !args['skip-stacks'];

// Load and server names: the goals below find their rows by them.
const IRIS_JSON = 'iris, protocol JSON';
const IRIS_PREDICT = 'iris, /predict JSON';
const MLP_JSON = 'MLP, one row, JSON';
const BARE_HONO = 'bare Hono';
const NPM_START = 'npm start (defaults)';
const ON_THREAD = 'npm start, iris kept on its inference thread';
const CLASSIC = 'classic stack native (nginx + gunicorn + Flask)';
const GATEWAY = 'compose gateway (nginx + function containers)';

interface Server {
  start(): Promise<RunningStack>;
  loads: Record<string, { path: string; body: string }>;
}

/** A node process serving on a port: its CPU is its own (every thread). */
function nodeServer(args: (port: number) => string[], cwd: string, ready: string, env: Record<string, string> = {}): () => Promise<RunningStack> {
  return async () => {
    const port = await freePort();
    const child = spawn(process.execPath, args(port), { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    const url = `http://127.0.0.1:${port}`;
    for (let i = 0; i < 300; i++) {
      if (await fetch(`${url}${ready}`).then((r) => r.ok, () => false)) return { url, cpuSeconds: async () => treeCpuSeconds([child.pid!]), stop: () => stop(child) };
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGTERM');
    throw new Error(`server did not become ready: ${err.slice(-1000)}`);
  };
}

// `npm start` serves the tree's functions and, with the stacks, the wide MLP beside them.
const startFunctions = STACKS
  ? linkedFunctions(join(WORK, 'functions'), {
    ...Object.fromEntries(readdirSync(join(TREE, 'functions')).map((name) => [name, join(TREE, 'functions', name)])),
    mlp: join(ROOT, 'bench/functions/mlp'),
  })
  : undefined;
if (STACKS) placeMlpModel();
const startArgs = (JSON.parse(readFileSync(join(TREE, 'package.json'), 'utf8')).scripts.start as string).replace(/^exec\s+node\s+/, '').split(/\s+/);

const SERVERS: Record<string, Server> = {
  'bare node:http': { start: nodeServer((p) => ['bench/floor/node-http.mjs', String(p)], ROOT, '/v2/models/iris/ready'), loads: { [IRIS_JSON]: { path: '/v2/models/iris/infer', body: INFER } } },
  [BARE_HONO]: { start: nodeServer((p) => ['bench/floor/hono.mjs', String(p)], ROOT, '/v2/models/iris/ready'), loads: { [IRIS_JSON]: { path: '/v2/models/iris/infer', body: INFER } } },
  [NPM_START]: {
    // The tree's `npm start` entry run by node itself, so the process's CPU time is the server's.
    start: nodeServer((p) => [...startArgs, ...(startFunctions ? ['--functions', startFunctions] : []), '--port', String(p)], TREE, STACKS ? '/v2/models/mlp/ready' : '/v2/models/iris/ready'),
    loads: {
      [IRIS_JSON]: { path: '/v2/models/iris/infer', body: INFER },
      [IRIS_PREDICT]: { path: '/iris/predict', body: PREDICT },
      ...(STACKS ? { [MLP_JSON]: { path: '/v2/models/mlp/infer', body: MLP_INFER } } : {}),
    },
  },
  // What the hop to the inference thread costs: the same, iris kept on its thread (the default,
  // auto, moves it to the main thread a second after it loads).
  [ON_THREAD]: {
    start: nodeServer((p) => [...startArgs, '--port', String(p)], TREE, '/v2/models/iris/ready', { MODELFN_INFERENCE_THREAD: 'true' }),
    loads: { [IRIS_JSON]: { path: '/v2/models/iris/infer', body: INFER } },
  },
};

let gateway: RunningStack | undefined;
if (STACKS) {
  if (!(await classicStackInstalled())) throw new Error('the classic stack needs: apt-get install nginx python3-flask python3-sklearn python3-onnx gunicorn (or --skip-stacks)');
  SERVERS[CLASSIC] = {
    start: () => classicNative(WORK, log),
    loads: { [IRIS_PREDICT]: { path: '/iris/predict', body: PREDICT }, [MLP_JSON]: { path: '/mlp/predict', body: MLP_PREDICT } },
  };
  // Built and started once; it waits, idle, while the other servers are measured.
  log('building and starting the compose gateway (iris, mlp)');
  const gatewayFunctions = linkedFunctions(join(WORK, 'gateway-functions'), { iris: join(TREE, 'functions/iris'), mlp: join(ROOT, 'bench/functions/mlp') });
  gateway = await gatewayStack(gatewayFunctions, join(WORK, 'gateway'), 'modelfn-floor', ['iris', 'mlp']);
  const running = gateway;
  SERVERS[GATEWAY] = {
    start: async () => ({ ...running, stop: async () => {} }),
    loads: { [IRIS_JSON]: { path: '/v2/models/iris/infer', body: INFER }, [MLP_JSON]: { path: '/v2/models/mlp/infer', body: MLP_INFER } },
  };
}

interface Row { rps: number[]; cpuMs: number[]; p50: number[]; errors: number }
const rows = new Map<string, Row>();
const key = (server: string, load: string, headers: string) => `${server}|${load}|${headers}`;

const names = Object.keys(SERVERS);
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...names].reverse() : names;
    for (const name of order) {
      const server = SERVERS[name];
      const running = await server.start();
      try {
        for (const [load, { path, body }] of Object.entries(server.loads)) {
          for (const [hname, extra] of Object.entries(HEADERS)) {
            const request: LoadRequest = { url: `${running.url}${path}`, body, headers: { 'Content-Type': 'application/json', ...extra } };
            await wrk(request, 64, 2, WORK, 'warm');
            const cpu = await running.cpuSeconds();
            const many = await wrk(request, 64, SECONDS, WORK, 'run');
            const cpuMs = (((await running.cpuSeconds()) - cpu) * 1000) / many.requests;
            const one = await wrk(request, 1, Math.max(2, Math.round(SECONDS / 2)), WORK, 'one');
            const row = rows.get(key(name, load, hname)) ?? { rps: [], cpuMs: [], p50: [], errors: 0 };
            row.rps.push(many.rps); row.cpuMs.push(cpuMs); row.p50.push(one.p50); row.errors += many.errors + one.errors;
            rows.set(key(name, load, hname), row);
            log(`round ${round + 1} ${name} ${load} ${hname}: ${many.rps.toFixed(0)} requests/s at 64, ${cpuMs.toFixed(4)} CPU ms/request, p50 at 1: ${one.p50} ms, errors ${many.errors + one.errors}`);
          }
        }
      } finally {
        await running.stop();
      }
    }
  }
} finally {
  await gateway?.stop();
}

const lines = [
  '# The request path against its floor',
  '',
  `Generated by \`npm run bench:floor -- ${process.argv.slice(2).join(' ')}\` on ${new Date().toISOString()}: ${ROUNDS} rounds alternating the order of the servers; wrk -t1 -c64 -d${SECONDS}s after a 2 s warm-up for requests/s and CPU, then wrk -t1 -c1 -d${Math.max(2, Math.round(SECONDS / 2))}s for p50. Medians of the rounds (every run in brackets). CPU is the server's user + system time per request at 64 connections: the node process (every thread); for the classic stack, gunicorn's processes and nginx's; for the compose gateway, the containers' processes (nginx, the functions' node), not Docker's port proxy or daemon. Ratios are against bare Hono with the same headers.${STACKS ? ' `npm start` serves the MLP beside the default functions (bench/functions/mlp, batching on); the compose gateway serves iris and the MLP, built from this tree\'s runtime.' : ''}`,
  '',
  `\`npm start\` of \`${TREE}\`. A real client's headers: ${Object.entries(REAL_CLIENT_HEADERS).map(([k, v]) => `\`${k}: ${v}\``).join(', ')}.`,
  '',
  '| server | load | headers | requests/s at 64 | / bare Hono | p50 at 1 (ms) | - bare Hono (ms) | CPU ms/request | / bare Hono |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const [k, row] of rows) {
  const [server, load, hname] = k.split('|');
  const hono = rows.get(key(BARE_HONO, IRIS_JSON, hname))!;
  const rps = median(row.rps), p50 = median(row.p50), cpu = median(row.cpuMs);
  lines.push(`| ${server} | ${load} | ${hname} | ${rps.toFixed(0)} (${row.rps.map((x) => x.toFixed(0)).join(', ')}) | ${(rps / median(hono.rps)).toFixed(2)} | ${p50.toFixed(3)} (${row.p50.join(', ')}) | ${(p50 - median(hono.p50)).toFixed(3)} | ${cpu.toFixed(4)} | ${(cpu / median(hono.cpuMs)).toFixed(2)} |`);
}
const errors = [...rows.values()].reduce((n, r) => n + r.errors, 0);
lines.push('', `Errors (non-2xx and socket errors) over all runs: ${errors}.`, '');

// The issue's goals: same run, default settings, a real client's headers.
const REAL = "a real client's headers";
const rps = (server: string, load: string) => rows.get(key(server, load, REAL)) && median(rows.get(key(server, load, REAL))!.rps);
const p50 = (server: string, load: string) => rows.get(key(server, load, REAL)) && median(rows.get(key(server, load, REAL))!.p50);
const goal = (what: string, measured: string, ok: boolean | undefined, target: string) =>
  `| ${what} | ${target} | ${measured} | ${ok === undefined ? 'not measured' : ok ? '**met**' : '**missed**'} |`;
const ratio = (what: string, a: [string, string], b: [string, string], min?: number) => {
  const x = rps(...a), y = rps(...b);
  const measured = x === undefined || y === undefined ? '-' : `${x.toFixed(0)} / ${y.toFixed(0)} = ${(x / y).toFixed(2)}x`;
  if (min === undefined) return `| ${what} | | ${measured} | |`;
  return goal(what, measured, x === undefined || y === undefined ? undefined : x / y >= min, `>= ${min}x`);
};
const startP50 = p50(NPM_START, IRIS_JSON), honoP50 = p50(BARE_HONO, IRIS_JSON);
lines.push(
  '### The goals (a real client\'s headers, requests/s at 64 connections)',
  '',
  '| goal | target | measured | |',
  '| --- | --- | --- | --- |',
  ratio('`npm start` iris protocol JSON against bare Hono', [NPM_START, IRIS_JSON], [BARE_HONO, IRIS_JSON], 0.75),
  ratio('`npm start` iris `/predict` against bare Hono', [NPM_START, IRIS_PREDICT], [BARE_HONO, IRIS_JSON], 0.75),
  goal('`npm start` iris protocol JSON, p50 at one connection, against bare Hono\'s', startP50 === undefined || honoP50 === undefined ? '-' : `${startP50.toFixed(3)} - ${honoP50.toFixed(3)} = +${(startP50 - honoP50).toFixed(3)} ms`, startP50 === undefined || honoP50 === undefined ? undefined : startP50 - honoP50 <= 0.05, '<= +0.05 ms'),
  ratio('the wide MLP, one row per request: `npm start` against the classic stack native', [NPM_START, MLP_JSON], [CLASSIC, MLP_JSON], 10),
  ratio('iris through the compose gateway against the classic stack native', [GATEWAY, IRIS_JSON], [CLASSIC, IRIS_PREDICT], 2),
  ratio('(reference) the wide MLP through the compose gateway against the classic stack native', [GATEWAY, MLP_JSON], [CLASSIC, MLP_JSON]),
  `| (reference) p50 at one connection, \`npm start\` with iris kept on its thread, against bare Hono's | | ${p50(ON_THREAD, IRIS_JSON) === undefined || honoP50 === undefined ? '-' : `+${(p50(ON_THREAD, IRIS_JSON)! - honoP50).toFixed(3)} ms`} | |`,
  ratio('(reference) iris protocol JSON, `npm start` with iris kept on its thread (`MODELFN_INFERENCE_THREAD=true`) against bare Hono', [ON_THREAD, IRIS_JSON], [BARE_HONO, IRIS_JSON]),
  '',
);
mkdirSync(join(args.out!, '..'), { recursive: true });
writeFileSync(args.out!, lines.join('\n'));
log(lines.join('\n'));
if (TREE === resolve(ROOT)) {
  const file = join(ROOT, 'BENCHMARKS.md');
  writeFileSync(file, withFloorSection(readFileSync(file, 'utf8'), floorSection(lines.join('\n').replace(/^# /, '## '))));
  log('pasted the report into BENCHMARKS.md');
}
