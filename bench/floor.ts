/**
 * `npm run bench:floor`: the request path against its floor, in one run. Bare `node:http` and
 * bare Hono doing the same JSON in and out (bench/floor/), and `npm start` with its default
 * settings (iris through the protocol route and `/predict`), each with wrk's own headers and
 * with a real client's (`Accept-Encoding: gzip, deflate`, `Accept: *\/*`, a User-Agent):
 * requests/s at 64 connections, p50 at one connection, and the server's CPU per request.
 * Rounds alternate the order of the servers, so drift on a shared machine falls on all.
 * Writes bench/results/floor.md and, when it measured this tree, pastes it into BENCHMARKS.md
 * (bench/floor/section.ts; `npm run bench` keeps the section).
 *
 *   --rounds N   measured rounds (default 3)
 *   --seconds N  seconds per run (default 6), after a 2 s warm-up
 *   --tree DIR   the source tree whose `npm start` is measured (default this one; e.g. a
 *                `git archive` of an earlier commit with node_modules linked in)
 *   --out FILE   report file (default bench/results/floor.md)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../builder/docker/images.ts';
import { freePort } from '../test/docker.ts';
import { floorSection, withFloorSection } from './floor/section.ts';
import { cpuSeconds, median, stop } from './server-process.ts';
import { REAL_CLIENT_HEADERS, wrk, type LoadRequest } from './wrk.ts';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '6' },
    tree: { type: 'string', default: ROOT },
    out: { type: 'string', default: join(ROOT, 'bench/results/floor.md') },
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

interface Server {
  /** node's arguments (after node itself), given the port. */
  args: (port: number) => string[];
  cwd?: string;
  loads: Record<string, { path: string; body: string }>;
}

const SERVERS: Record<string, Server> = {
  'bare node:http': { args: (p) => ['bench/floor/node-http.mjs', String(p)], loads: { 'protocol JSON': { path: '/v2/models/iris/infer', body: INFER } } },
  'bare Hono': { args: (p) => ['bench/floor/hono.mjs', String(p)], loads: { 'protocol JSON': { path: '/v2/models/iris/infer', body: INFER } } },
  'npm start (defaults)': {
    // The tree's `npm start` entry run by node itself, so the process's CPU time is the server's.
    cwd: TREE,
    args: (p) => [...(JSON.parse(readFileSync(join(TREE, 'package.json'), 'utf8')).scripts.start as string).replace(/^exec\s+node\s+/, '').split(/\s+/), '--port', String(p)],
    loads: { 'protocol JSON': { path: '/v2/models/iris/infer', body: INFER }, '/iris/predict': { path: '/iris/predict', body: PREDICT } },
  },
};

async function start(server: Server): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, server.args(port), { cwd: server.cwd ?? ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (await fetch(`${url}/v2/models/iris/ready`).then((r) => r.ok, () => false)) return { child, url };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`server did not become ready: ${err.slice(-1000)}`);
}

interface Row { rps: number[]; cpuMs: number[]; p50: number[]; errors: number }
const rows = new Map<string, Row>();
const key = (server: string, load: string, headers: string) => `${server}|${load}|${headers}`;

const names = Object.keys(SERVERS);
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 ? [...names].reverse() : names;
  for (const name of order) {
    const server = SERVERS[name];
    const { child, url } = await start(server);
    try {
      for (const [load, { path, body }] of Object.entries(server.loads)) {
        for (const [hname, extra] of Object.entries(HEADERS)) {
          const request: LoadRequest = { url: `${url}${path}`, body, headers: { 'Content-Type': 'application/json', ...extra } };
          await wrk(request, 64, 2, WORK, 'warm');
          const cpu = cpuSeconds(child.pid!);
          const many = await wrk(request, 64, SECONDS, WORK, 'run');
          const cpuMs = ((cpuSeconds(child.pid!) - cpu) * 1000) / many.requests;
          const one = await wrk(request, 1, Math.max(2, SECONDS / 2), WORK, 'one');
          const row = rows.get(key(name, load, hname)) ?? { rps: [], cpuMs: [], p50: [], errors: 0 };
          row.rps.push(many.rps); row.cpuMs.push(cpuMs); row.p50.push(one.p50); row.errors += many.errors + one.errors;
          rows.set(key(name, load, hname), row);
          log(`round ${round + 1} ${name} ${load} ${hname}: ${many.rps.toFixed(0)} requests/s at 64, ${cpuMs.toFixed(4)} CPU ms/request, p50 at 1: ${one.p50} ms, errors ${many.errors + one.errors}`);
        }
      }
    } finally {
      await stop(child);
    }
  }
}

const lines = [
  '# The request path against its floor',
  '',
  `Generated by \`npm run bench:floor -- ${process.argv.slice(2).join(' ')}\` on ${new Date().toISOString()}: ${ROUNDS} rounds alternating the order of the servers; wrk -t1 -c64 -d${SECONDS}s after a 2 s warm-up for requests/s and CPU, then wrk -t1 -c1 -d${Math.max(2, SECONDS / 2)}s for p50. Medians of the rounds (every run in brackets). CPU is the server process's user + system time per request at 64 connections. Ratios are against bare Hono with the same headers.`,
  '',
  `\`npm start\` of \`${TREE}\`. A real client's headers: ${Object.entries(REAL_CLIENT_HEADERS).map(([k, v]) => `\`${k}: ${v}\``).join(', ')}.`,
  '',
  '| server | load | headers | requests/s at 64 | / bare Hono | p50 at 1 (ms) | - bare Hono (ms) | CPU ms/request | / bare Hono |',
  '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
];
for (const [k, row] of rows) {
  const [server, load, hname] = k.split('|');
  const hono = rows.get(key('bare Hono', 'protocol JSON', hname))!;
  const rps = median(row.rps), p50 = median(row.p50), cpu = median(row.cpuMs);
  lines.push(`| ${server} | ${load} | ${hname} | ${rps.toFixed(0)} (${row.rps.map((x) => x.toFixed(0)).join(', ')}) | ${(rps / median(hono.rps)).toFixed(2)} | ${p50.toFixed(3)} (${row.p50.join(', ')}) | ${(p50 - median(hono.p50)).toFixed(3)} | ${cpu.toFixed(4)} | ${(cpu / median(hono.cpuMs)).toFixed(2)} |`);
}
const errors = [...rows.values()].reduce((n, r) => n + r.errors, 0);
lines.push('', `Errors (non-2xx and socket errors) over all runs: ${errors}.`, '');
mkdirSync(join(args.out!, '..'), { recursive: true });
writeFileSync(args.out!, lines.join('\n'));
log(lines.join('\n'));
if (TREE === resolve(ROOT)) {
  const file = join(ROOT, 'BENCHMARKS.md');
  writeFileSync(file, withFloorSection(readFileSync(file, 'utf8'), floorSection(lines.join('\n').replace(/^# /, '## '))));
  log('pasted the report into BENCHMARKS.md');
}
