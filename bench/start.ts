/**
 * A bundled function's start outside containers, two bundles side by side: each round starts one
 * then the other (`PORT=0 node <dir>/main.mjs`, the image's way, without the engine's own start),
 * and reads the time until the `listening` line and the function's own `modelfn_startup_seconds`
 * phases from its /metrics (`process`: Node and the bundle until the model begins to load, what the
 * wake bench calls `process_start`). Each bundle has Node's module compile cache, as in its image
 * (a folder of its own, filled by a first start that is not counted). Medians per bundle, written
 * to bench/results/start-<name>.md.
 *
 *   npx tsx bench/start.ts --a dist/ab-old/iris --b dist/ab-new/iris --rounds 9 --name early-session \
 *     [--node /path/to/node]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { median, stop } from './server-process.ts';

interface Start {
  listeningMs: number;
  phases: Record<string, number>;
}

/** Starts a bundle, waits for its `listening` line, reads its startup phases, stops it. */
async function startOnce(node: string, dir: string, compileCache: string): Promise<Start> {
  const t0 = performance.now();
  const env = { ...process.env, PORT: '0', HOST: '127.0.0.1', NODE_COMPILE_CACHE: compileCache };
  const child = spawn(node, [join(dir, 'main.mjs')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const port = await new Promise<number>((done, fail) => {
      let text = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        const line = text.split('\n').find((l) => l.includes('"msg":"listening"'));
        if (line) done((JSON.parse(line) as { port: number }).port);
      });
      child.once('exit', (code) => fail(new Error(`${dir} exited (code ${code}) before listening`)));
    });
    const listeningMs = performance.now() - t0;
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const phases: Record<string, number> = {};
    for (const m of metrics.matchAll(/^modelfn_startup_seconds\{phase="([a-z_]+)"\} ([\d.e+-]+)$/gm)) phases[m[1]] = Number(m[2]) * 1000;
    return { listeningMs, phases };
  } finally {
    await stop(child);
  }
}

const { values } = parseArgs({ options: { a: { type: 'string' }, b: { type: 'string' }, rounds: { type: 'string', default: '9' }, name: { type: 'string', default: 'start' }, node: { type: 'string', default: process.execPath } } });
if (!values.a || !values.b) throw new Error('usage: bench/start.ts --a DIR --b DIR [--rounds N] [--name NAME] [--node PATH]');
const dirs = { a: resolve(values.a), b: resolve(values.b) };
const runs: Record<'a' | 'b', Start[]> = { a: [], b: [] };
const caches = { a: mkdtempSync(join(tmpdir(), 'modelfn-start-a-')), b: mkdtempSync(join(tmpdir(), 'modelfn-start-b-')) };
try {
  // One start of each first, not counted: the file cache, and the compile cache filled.
  await startOnce(values.node, dirs.a, caches.a);
  await startOnce(values.node, dirs.b, caches.b);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const key of round % 2 ? ['b', 'a'] as const : ['a', 'b'] as const) runs[key].push(await startOnce(values.node, dirs[key], caches[key]));
  }
} finally {
  for (const dir of Object.values(caches)) rmSync(dir, { recursive: true, force: true });
}
const phaseNames = [...new Set([...runs.a, ...runs.b].flatMap((r) => Object.keys(r.phases)))];
const row = (key: 'a' | 'b') => {
  const r = runs[key];
  const sum = r.map((x) => (x.phases.process ?? 0) + (x.phases.model_load ?? 0));
  return `| ${key}: \`${values[key]}\` | ${median(r.map((x) => x.listeningMs)).toFixed(1)} | ${phaseNames.map((p) => median(r.map((x) => x.phases[p] ?? 0)).toFixed(1)).join(' | ')} | ${median(sum).toFixed(1)} |`;
};
const command = `npx tsx bench/start.ts ${process.argv.slice(2).join(' ')}`;
const report = [
  `# Start of a bundle outside containers: ${values.name}`,
  '',
  `Command: \`${command}\` (${new Date().toISOString()}, Node ${execFileSync(values.node, ['--version'], { encoding: 'utf8' }).trim()}). ${values.rounds} starts of each, alternating, after one of each not counted; each with its own compile cache; medians, ms.`,
  '',
  `| bundle | spawn -> listening | ${phaseNames.join(' | ')} | process + model_load |`,
  `| --- | --- | ${phaseNames.map(() => '---').join(' | ')} | --- |`,
  row('a'),
  row('b'),
  '',
].join('\n');
const out = join(import.meta.dirname, 'results', `start-${values.name}.md`);
writeFileSync(out, report);
process.stdout.write(`${report}\nwritten to ${out}\n`);
