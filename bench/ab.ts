/**
 * `tsx bench/ab.ts --base DIR`: the same load against `npm start` of two source trees, side by
 * side in one run, to tell whether a change slowed the common path. Rounds alternate which tree
 * goes first, so drift on a shared machine falls on both. Besides requests/s (which other work on
 * a shared machine moves by tens of percent), it reports the server's own CPU time per request,
 * which such neighbours barely move. Writes a report (commands, every run, medians, ratios).
 *
 *   --base DIR      the tree to compare against (e.g. `git archive main | tar -x -C DIR`, with
 *                   node_modules linked in)
 *   --head DIR      the tree under test (default: this one)
 *   --rounds N      measured runs per tree (default 5)
 *   --seconds N     seconds per run (default 10), after a 3 s warm-up
 *   --connections N wrk connections (default 64)
 *   --headers KIND  `real` (default): a real client's headers besides Content-Type
 *                   (`Accept-Encoding: gzip, deflate`, `Accept: *\/*`, a User-Agent, as
 *                   bench/floor.ts sends); `wrk`: wrk's own headers only
 *   --out FILE      report file (default bench/results/ab.md)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../builder/docker/images.ts';
import { freePort } from '../test/docker.ts';
import { cpuSeconds, median, stop } from './server-process.ts';
import { REAL_CLIENT_HEADERS, wrk, type LoadRequest, type LoadResult } from './wrk.ts';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' },
    head: { type: 'string', default: ROOT },
    rounds: { type: 'string', default: '5' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    headers: { type: 'string', default: 'real' },
    out: { type: 'string', default: join(ROOT, 'bench/results/ab.md') },
  },
});
if (!args.base) throw new Error('usage: tsx bench/ab.ts --base DIR [--head DIR] [--rounds N] [--seconds N] [--connections N] [--out FILE]');
const trees = { base: resolve(args.base), head: resolve(args.head!) };
const ROUNDS = Number(args.rounds);
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const WORK = mkdtempSync(join(tmpdir(), 'modelfn-ab-'));
const EXTRA_HEADERS: Record<string, string> = args.headers === 'wrk' ? {} : REAL_CLIENT_HEADERS;
const log = (line: string) => process.stdout.write(`${line}\n`);

/** The loads compared: iris in JSON, through the protocol route and /predict. */
const LOADS: Record<string, (base: string) => LoadRequest> = {
  'iris JSON /v2/models/iris/infer': (base) => ({
    url: `${base}/v2/models/iris/infer`,
    headers: { 'Content-Type': 'application/json', ...EXTRA_HEADERS },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }),
  }),
  'iris JSON /iris/predict': (base) => ({
    url: `${base}/iris/predict`,
    headers: { 'Content-Type': 'application/json', ...EXTRA_HEADERS },
    body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2]] }),
  }),
};

/**
 * `npm start -- --port N` of one tree: its entry run by node with tsx's loader, in one process
 * (no npm or tsx wrapper), so that the process's CPU time is the server's.
 */
async function startTree(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  // The tree's own `npm start` script: `[exec] tsx <entry> ...` or `[exec] node <entry> ...`.
  const [command, ...words] = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).scripts.start as string).replace(/^exec\s+/, '').split(/\s+/);
  if (command !== 'tsx' && command !== 'node') throw new Error(`${dir}: cannot run its npm start script without npm: ${command}`);
  const args = [...(command === 'tsx' ? ['--import', 'tsx'] : []), ...words, '--port', String(port)];
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    const ok = await fetch(`${url}/v2/models/iris/ready`).then((r) => r.ok, () => false);
    if (ok) return { child, url };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGTERM');
  throw new Error(`${dir}: npm start did not become ready: ${err.slice(-1000)}`);
}

interface Run extends LoadResult {
  /** Server CPU milliseconds per request. */
  cpuMs: number;
}

const results: Record<string, Record<'base' | 'head', Run[]>> = {};
for (const name of Object.keys(LOADS)) results[name] = { base: [], head: [] };

for (let round = 0; round < ROUNDS; round++) {
  const order: ('base' | 'head')[] = round % 2 ? ['head', 'base'] : ['base', 'head'];
  for (const side of order) {
    const { child, url } = await startTree(trees[side]);
    try {
      for (const [name, load] of Object.entries(LOADS)) {
        await wrk(load(url), CONNECTIONS, 3, WORK, 'warm');
        const cpu = cpuSeconds(child.pid!);
        const measured = await wrk(load(url), CONNECTIONS, SECONDS, WORK, 'run');
        const result = { ...measured, cpuMs: ((cpuSeconds(child.pid!) - cpu) * 1000) / measured.requests };
        results[name][side].push(result);
        log(`round ${round + 1} ${side.padEnd(4)} ${name}: ${result.rps.toFixed(0)} requests/s, ${result.cpuMs.toFixed(4)} CPU ms/request, p50 ${result.p50} ms, p99 ${result.p99} ms, errors ${result.errors}`);
      }
    } finally {
      await stop(child);
    }
  }
}

const lines = [
  '# A/B: iris JSON against `npm start`, two source trees side by side',
  '',
  `Generated by \`tsx bench/ab.ts ${process.argv.slice(2).join(' ')}\` on ${new Date().toISOString()} (${ROUNDS} rounds, alternating order; wrk -t1 -c${CONNECTIONS} -d${SECONDS}s after a 3 s warm-up; each tree's \`npm start\` entry with the default settings; ${args.headers === 'wrk' ? "wrk's own headers" : "a real client's headers"}).`,
  '',
  `- base: \`${trees.base}\``,
  `- head: \`${trees.head}\``,
  '',
  '| load | base requests/s (runs) | head requests/s (runs) | base median | head median | head / base | base p50 / p99 ms | head p50 / p99 ms |',
  '| --- | --- | --- | --- | --- | --- | --- | --- |',
];
const runs = (rs: Run[], key: 'rps' | 'cpuMs', digits: number) => rs.map((r) => r[key].toFixed(digits)).join(', ');
for (const [name, { base, head }] of Object.entries(results)) {
  const b = median(base.map((r) => r.rps));
  const h = median(head.map((r) => r.rps));
  lines.push(`| ${name} | ${runs(base, 'rps', 0)} | ${runs(head, 'rps', 0)} | ${b.toFixed(0)} | ${h.toFixed(0)} | ${(h / b).toFixed(3)} | ${median(base.map((r) => r.p50))} / ${median(base.map((r) => r.p99))} | ${median(head.map((r) => r.p50))} / ${median(head.map((r) => r.p99))} |`);
}
lines.push('', '| load | base CPU ms/request (runs) | head CPU ms/request (runs) | base median | head median | head / base |', '| --- | --- | --- | --- | --- | --- |');
for (const [name, { base, head }] of Object.entries(results)) {
  const b = median(base.map((r) => r.cpuMs));
  const h = median(head.map((r) => r.cpuMs));
  lines.push(`| ${name} | ${runs(base, 'cpuMs', 4)} | ${runs(head, 'cpuMs', 4)} | ${b.toFixed(4)} | ${h.toFixed(4)} | ${(h / b).toFixed(3)} |`);
}
const errors = Object.values(results).flatMap((r) => [...r.base, ...r.head]).reduce((n, r) => n + r.errors, 0);
lines.push('', `Errors (non-2xx and socket errors) over all runs: ${errors}.`, '');
mkdirSync(join(args.out!, '..'), { recursive: true });
writeFileSync(args.out!, lines.join('\n'));
log(lines.join('\n'));
