/**
 * `tsx bench/profile-path.ts [--tree DIR]...`: where `npm start`'s main thread spends its CPU
 * under load, by stage of the request path. Each tree's `npm start` runs with `node --cpu-prof`
 * while wrk sends iris JSON with a real client's headers at 64 connections; its profile's self
 * time is summed by stage (from the frame's file and name). The inference thread (session.run)
 * is another thread, not in this profile. Writes bench/results/profile-path.md.
 *
 *   --tree DIR   a source tree to profile, repeatable (default this one)
 *   --seconds N  seconds of load (default 8), after a 2 s warm-up
 *   --out FILE   report file (default bench/results/profile-path.md)
 *   --top N      also list each tree's N functions with the most self time in the stage 'other'
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../builder/docker/images.ts';
import { freePort } from '../test/docker.ts';
import { stop } from './server-process.ts';
import { REAL_CLIENT_HEADERS, wrk } from './wrk.ts';

const { values: args } = parseArgs({
  options: {
    tree: { type: 'string', multiple: true, default: [ROOT] },
    seconds: { type: 'string', default: '8' },
    out: { type: 'string', default: join(ROOT, 'bench/results/profile-path.md') },
    top: { type: 'string', default: '0' },
  },
});
const SECONDS = Number(args.seconds);
const WORK = mkdtempSync(join(tmpdir(), 'modelfn-profile-'));

/** The stage a frame belongs to, by its file and function name; the first rule that matches. */
const STAGES: [string, (url: string, name: string) => boolean][] = [
  ['GC', (_u, n) => n === '(garbage collector)'],
  ['idle', (_u, n) => n === '(idle)'],
  ['program (native, unattributed)', (_u, n) => n === '(program)' || n === '(root)'],
  ['compression', (u) => /zlib|response-compression/.test(u)],
  ['logging', (u) => /core\/log\.ts/.test(u)],
  ['metrics', (u) => /prom-client|core\/metrics\.ts/.test(u)],
  ['body read and decode', (u) => /request-encoding|body-limit|tensor\/|http\/protocol\.ts|http\/predict\.ts/.test(u)],
  ['queue and thread hop', (u) => /engine\/|worker_threads|internal\/worker|messageport/i.test(u)],
  ['our middleware (deadline, activity, auth, route class, request id)', (u) => /http\/deadline|http\/activity|http\/auth|route-class|request-id|node-response|http\/errors/.test(u)],
  ['routing (Hono router, embedded gateway)', (u) => /hono\/dist\/router|hono\/dist\/hono-base|gateway\//.test(u)],
  ['Hono context and request', (u) => /hono\/dist\//.test(u)],
  ['@hono/node-server (adapter)', (u) => /@hono\/node-server/.test(u)],
  ['Web Request/Response/Headers (undici)', (u) => /undici|internal\/deps|internal\/webstreams|internal\/abort_controller|internal\/event_target/.test(u)],
  ['HTTP parsing and writing (node:http)', (u, n) => /_http_|node:http/.test(u) || /^parserOn/.test(n)],
  ['sockets and streams', (u) => /node:net|node:stream|internal\/streams|stream_base/.test(u)],
  ['timers and promises', (u) => /internal\/timers|internal\/process\/task_queues|node:timers/.test(u)],
  ['other', () => true],
];

async function profileTree(tree: string): Promise<{ stages: Map<string, number>; total: number; requests: number; rps: number; other: Map<string, number> }> {
  const dir = join(WORK, String(Math.random()).slice(2));
  mkdirSync(dir);
  const port = await freePort();
  const [command, ...words] = (JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')).scripts.start as string).replace(/^exec\s+/, '').split(/\s+/);
  if (command !== 'node') throw new Error(`${tree}: npm start is not run by node`);
  const child = spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', dir, ...words, '--port', String(port)], { cwd: tree, stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300 && !(await fetch(`${url}/v2/models/iris/ready`).then((r) => r.ok, () => false)); i++) await new Promise((r) => setTimeout(r, 100));
  const request = {
    url: `${url}/v2/models/iris/infer`,
    headers: { 'Content-Type': 'application/json', ...REAL_CLIENT_HEADERS },
    body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [5.1, 3.5, 1.4, 0.2] }] }),
  };
  await wrk(request, 64, 2, WORK, 'warm');
  const load = await wrk(request, 64, SECONDS, WORK, 'run');
  await stop(child);
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`${tree}: no profile written`);
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: { id: number; callFrame: { functionName: string; url: string } }[]; samples: number[]; timeDeltas: number[] };
  const time = new Map<number, number>();
  p.samples.forEach((id, i) => time.set(id, (time.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const stages = new Map<string, number>();
  // The frames left unattributed, by function and file: where to look for a stage not named yet.
  const other = new Map<string, number>();
  let total = 0;
  for (const n of p.nodes) {
    const t = time.get(n.id) ?? 0;
    const stage = STAGES.find(([, match]) => match(n.callFrame.url, n.callFrame.functionName))![0];
    stages.set(stage, (stages.get(stage) ?? 0) + t);
    if (stage !== 'idle') total += t;
    if (stage === 'other') {
      const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules|runtime)\//, '$1/') || '(native)'}`;
      other.set(key, (other.get(key) ?? 0) + t);
    }
  }
  // The whole run, warm-up and start included: shares, not absolute figures.
  return { stages, total, requests: load.requests, rps: load.rps, other };
}

const trees = args.tree!.map((t) => resolve(t));
const results: Awaited<ReturnType<typeof profileTree>>[] = [];
for (const tree of trees) {
  results.push(await profileTree(tree));
  process.stdout.write(`profiled ${tree}\n`);
}
const lines = [
  '# Where `npm start` spends its CPU, by stage',
  '',
  `Generated by \`tsx bench/profile-path.ts ${process.argv.slice(2).join(' ')}\` on ${new Date().toISOString()}: \`node --cpu-prof\` of \`npm start\` (main thread; the inference thread's session.run is not in it) while wrk -t1 -c64 -d${SECONDS}s sends iris JSON to the protocol route with a real client's headers; self time summed by stage, as a share of the busy (non-idle) time of the whole profile, start-up and warm-up included.`,
  '',
  `| stage | ${trees.map((t) => `\`${t}\``).join(' | ')} |`,
  `| --- | ${trees.map(() => '---').join(' | ')} |`,
  ...STAGES.map(([stage]) => stage).filter((s) => s !== 'idle').map((stage) => `| ${stage} | ${results.map((r) => `${(((r.stages.get(stage) ?? 0) / r.total) * 100).toFixed(1)}%`).join(' | ')} |`),
  `| (requests/s during the profile) | ${results.map((r) => r.rps.toFixed(0)).join(' | ')} |`,
  '',
  ...(Number(args.top) > 0 ? trees.flatMap((tree, i) => [
    `The ${args.top} functions with the most self time in 'other', \`${tree}\`:`,
    '',
    '| function and file | share of busy time |',
    '| --- | --- |',
    ...[...results[i].other].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top)).map(([key, t]) => `| \`${key}\` | ${((t / results[i].total) * 100).toFixed(2)}% |`),
    '',
  ]) : []),
];
mkdirSync(join(args.out!, '..'), { recursive: true });
writeFileSync(args.out!, lines.join('\n'));
process.stdout.write(lines.join('\n'));
