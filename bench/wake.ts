/**
 * `npm run bench:wake` (also run at the end of `npm run bench`): scale to zero on the real
 * engine, through the gateway on 127.0.0.1. Writes the "Scale to zero" section of BENCHMARKS.md.
 *
 *   - asleep to first answer, stopped (`wake: 'start'`) and frozen (`wake: 'unpause'`): the
 *     median of several wakes of iris, each after the function went to sleep;
 *   - 16 concurrent requests sent while a function sleeps: how many are answered, and when;
 *   - the memory of one idle iris container (`docker stats`), its process's resident memory and
 *     where it goes (both threads' V8 heaps, from a probe loaded with NODE_OPTIONS=--import);
 *   - the memory of 20 functions of which 18 are asleep, against the same 20 all awake.
 *
 *   --rounds N      wakes measured per mode (default 7)
 *   --functions N   functions in the memory comparison (default 20; 2 never sleep)
 */
import { cpSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runBuild } from '../build.ts';
import { ROOT, activatorImage, functionImage, gatewayImage, run } from '../builder/docker/images.ts';
import { stackDown, stackUp, waitFor } from '../builder/docker/compose.ts';
import { freePort } from '../test/docker.ts';
import { dockerClient } from '../runtime/activator/docker.ts';

const log = (line: string) => process.stdout.write(`${line}\n`);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const IRIS = { instances: [[5.1, 3.5, 1.4, 0.2]] };
const SECTION_START = '<!-- bench:wake -->';
const SECTION_END = '<!-- /bench:wake -->';

interface Stack {
  root: string;
  project: string;
  env: Record<string, string>;
  url: string;
  tag: string;
  names: string[];
}

/** A project of iris copies, each with the given declaration, built and up. */
async function stackOf(name: string, declarations: Record<string, string>): Promise<Stack> {
  const root = join(ROOT, 'dist/bench-wake', name);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'functions'), { recursive: true });
  symlinkSync(join(ROOT, 'runtime'), join(root, 'runtime'));
  for (const [fn, declaration] of Object.entries(declarations)) {
    mkdirSync(join(root, 'functions', fn));
    cpSync(join(ROOT, 'functions/iris/model.onnx'), join(root, 'functions', fn, 'model.onnx'));
    writeFileSync(join(root, 'functions', fn, 'function.ts'), `export default ${declaration};\n`);
  }
  const tag = `bench-wake-${process.pid}`;
  const project = `modelfn-bench-${name}-${process.pid}`;
  const env = { MODELFN_IMAGE_TAG: tag, MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: project };
  Object.assign(process.env, env);
  const lines: string[] = [];
  if (await runBuild({ functionsDir: join(root, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: (l) => lines.push(l) }) !== 0) {
    throw new Error(lines.join('\n'));
  }
  const names = Object.keys(declarations);
  const url = await stackUp({ root, project, env }, names);
  return { root, project, env, url, tag, names };
}

async function teardown(stack: Stack): Promise<void> {
  await stackDown({ root: stack.root, project: stack.project, env: stack.env });
  for (const image of [...stack.names.map((n) => functionImage(n, stack.tag)), gatewayImage(stack.tag), activatorImage(stack.tag)]) {
    await run('docker', ['rmi', '-f', image]).catch(() => '');
  }
}

async function states(stack: Stack, service: string): Promise<string[]> {
  const ids = (await run('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`, '--filter', `label=com.docker.compose.service=${service}`])).trim().split('\n').filter(Boolean);
  return Promise.all(ids.map(async (id) => (await run('docker', ['inspect', '--format', '{{.State.Status}}', id])).trim()));
}

const untilAsleep = (stack: Stack, service: string, state: string) => waitFor(`${service} ${state}`, async () => {
  const s = await states(stack, service);
  return (s.length > 0 && s.every((x) => x === state)) || s.join(', ');
}, 60_000);

async function predict(stack: Stack, fn: string): Promise<{ ms: number; status: number }> {
  const started = performance.now();
  const res = await fetch(`${stack.url}/${fn}/predict`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(IRIS) });
  await res.arrayBuffer();
  return { ms: performance.now() - started, status: res.status };
}

/** Memory of every container of the project, MiB, from the engine's stats. */
async function projectMemoryMiB(stack: Stack): Promise<{ total: number; containers: number }> {
  const ids = (await run('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${stack.project}`])).trim().split('\n').filter(Boolean);
  const out = await run('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', ...ids]);
  const scale: Record<string, number> = { B: 1 / 1024 ** 2, KiB: 1 / 1024, MiB: 1, GiB: 1024, kB: 1 / 1024, MB: 1, GB: 1024 };
  let total = 0;
  for (const line of out.trim().split('\n')) {
    const m = /^([\d.]+)\s*([KMG]?i?B|kB)/.exec(line);
    if (m) total += Number(m[1]) * (scale[m[2]] ?? 1);
  }
  return { total, containers: ids.length };
}

/** Mean seconds of each wake phase, per function, from the activator's own metrics. */
async function wakePhases(stack: Stack): Promise<Record<string, Record<string, number>>> {
  const id = (await run('docker', ['ps', '-q', '--filter', `label=com.docker.compose.project=${stack.project}`, '--filter', 'label=com.docker.compose.service=activator'])).trim();
  const text = await run('docker', ['exec', id, '/usr/local/bin/node', '-e', "fetch('http://127.0.0.1:8080/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))"]);
  const sums = new Map<string, number>();
  const phases: Record<string, Record<string, number>> = {};
  for (const m of text.matchAll(/^modelfn_activator_wake_seconds_(sum|count)\{function="(\w+)",mode="\w+",phase="(\w+)"\} ([\d.e+-]+)$/gm)) {
    const key = `${m[2]} ${m[3]}`;
    if (m[1] === 'sum') sums.set(key, Number(m[4]));
    else if (Number(m[4]) > 0) (phases[m[2]] ??= {})[m[3]] = (sums.get(key) ?? 0) / Number(m[4]);
  }
  return phases;
}

/**
 * The engine's own share, the floor under any wake: a container that does nothing (Node waiting
 * on a timer, from the function's image, on the project's network) started and unpaused through
 * the Engine API, as the activator does, `rounds` times each; medians in ms.
 */
async function engineFloor(stack: Stack, rounds: number): Promise<{ startMs: number; unpauseMs: number }> {
  const docker = dockerClient();
  const name = `${stack.project}-floor`;
  const id = await docker.create(name, {
    Image: functionImage(stack.names[0], stack.tag), Entrypoint: ['/usr/local/bin/node'], Cmd: ['-e', 'setTimeout(() => {}, 1e9)'],
    HostConfig: { NetworkMode: `${stack.project}_functions` },
  });
  const starts: number[] = [];
  const unpauses: number[] = [];
  try {
    for (let i = 0; i < rounds; i++) {
      let t = performance.now();
      await docker.start(id);
      starts.push(performance.now() - t);
      await docker.pause(id);
      t = performance.now();
      await docker.unpause(id);
      unpauses.push(performance.now() - t);
      await docker.stop(id, 0);
    }
  } finally {
    await docker.remove(id);
  }
  return { startMs: median(starts), unpauseMs: median(unpauses) };
}

export interface WakeFigures {
  /** The engine's start and unpause of a do-nothing container on this machine (medians, ms). */
  floor?: { startMs: number; unpauseMs: number };
  stoppedMs: number[];
  frozenMs: number[];
  /** Mean seconds per wake phase, per function (stopped, frozen). */
  phases?: Record<string, Record<string, number>>;
  burst: { answered: number; sent: number; ms: number; mode: string }[];
  memory?: { functions: number; asleep: number; allOnMiB: number; asleepMiB: number; allOnContainers: number; asleepContainers: number };
  idle?: IdleMemory;
  load: string;
}

/** One idle iris container: what `docker stats` says, and its process's memory by part (MiB). */
export interface IdleMemory {
  statsMiB: number;
  rssMiB: number;
  anonMiB: number;
  fileMiB: number;
  /** Per thread (main, inference): V8 heap (physical), and the heap's external memory. */
  heaps: { thread: string; heapMiB: number; externalMiB: number }[];
}

/** Reports both threads' V8 heaps to stderr after IDLE_MS; loaded with NODE_OPTIONS=--import. */
const PROBE = `import v8 from 'node:v8';
import { isMainThread } from 'node:worker_threads';
setTimeout(() => {
  const h = v8.getHeapStatistics();
  process.stderr.write(JSON.stringify({ probe: isMainThread ? 'main' : 'inference', heap: h.total_physical_size, external: h.external_memory }) + '\\n');
}, Number(process.env.PROBE_AFTER_MS)).unref();
`;

async function containerMiB(id: string): Promise<number> {
  const line = (await run('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', id])).trim();
  const m = /^([\d.]+)\s*([KMG]i?B)/.exec(line);
  if (!m) throw new Error(`docker stats: ${line}`);
  return Number(m[1]) * ({ KiB: 1 / 1024, MiB: 1, GiB: 1024 } as Record<string, number>)[m[2]];
}

/**
 * An iris container left idle 10 s after its start (its warm-up ran one inference): `docker stats`
 * and /proc/1/status of one as the stack runs it; the V8 heaps of a second one with the probe.
 */
async function idleMemory(stack: Stack, fn: string): Promise<IdleMemory> {
  const image = functionImage(fn, stack.tag);
  const probe = join(stack.root, 'probe.mjs');
  writeFileSync(probe, PROBE);
  const idleMs = 10_000;
  const start = (extra: string[]) => run('docker', ['run', '-d', '--read-only', '--network', 'none', ...extra, image]).then((id) => id.trim());
  const plain = await start([]);
  const probed = await start(['-v', `${probe}:/probe.mjs:ro`, '-e', 'NODE_OPTIONS=--import=/probe.mjs', '-e', `PROBE_AFTER_MS=${idleMs}`]);
  try {
    await new Promise((r) => setTimeout(r, idleMs + 1000));
    const statsMiB = await containerMiB(plain);
    const status = await run('docker', ['exec', plain, '/usr/local/bin/node', '-e', "process.stdout.write(require('fs').readFileSync('/proc/1/status', 'utf8'))"]);
    const kB = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) / 1024;
    const logs = await run('docker', ['logs', probed]);
    const heaps = [...logs.matchAll(/^\{"probe".*$/gm)].map((m) => JSON.parse(m[0]) as { probe: string; heap: number; external: number })
      .map((p) => ({ thread: p.probe, heapMiB: p.heap / 1024 ** 2, externalMiB: p.external / 1024 ** 2 }));
    return { statsMiB, rssMiB: kB('VmRSS'), anonMiB: kB('RssAnon'), fileMiB: kB('RssFile'), heaps };
  } finally {
    await run('docker', ['rm', '-f', plain, probed]).catch(() => '');
  }
}

/** Runs the wake measurements; returns the figures. */
export async function measureWakes(rounds: number, memoryFunctions: number): Promise<WakeFigures> {
  const figures: WakeFigures = { stoppedMs: [], frozenMs: [], burst: [], load: '' };
  log('scale to zero: iris stopped and frozen when idle (idleSeconds 2)');
  const stack = await stackOf('modes', { stopped: '{ scale: { min: 0, idleSeconds: 2 } }', frozen: "{ scale: { min: 0, idleSeconds: 2, wake: 'unpause' } }" });
  try {
    for (const [fn, state, into] of [['stopped', 'exited', figures.stoppedMs], ['frozen', 'paused', figures.frozenMs]] as const) {
      for (let i = 0; i < rounds; i++) {
        await untilAsleep(stack, fn, state);
        await new Promise((r) => setTimeout(r, 300));
        const { ms, status } = await predict(stack, fn);
        if (status !== 200) throw new Error(`${fn}: status ${status} after a wake`);
        into.push(ms);
        log(`  ${fn}: asleep -> first answer ${ms.toFixed(1)} ms`);
      }
      await untilAsleep(stack, fn, state);
      const started = performance.now();
      const burst = await Promise.all(Array.from({ length: 16 }, () => predict(stack, fn)));
      const answered = burst.filter((b) => b.status === 200).length;
      figures.burst.push({ mode: fn, answered, sent: 16, ms: performance.now() - started });
      log(`  ${fn}: 16 concurrent during a wake, ${answered} answered in ${(performance.now() - started).toFixed(0)} ms`);
    }
    figures.phases = await wakePhases(stack);
    figures.floor = await engineFloor(stack, rounds);
    log(`  the engine alone: start ${figures.floor.startMs.toFixed(0)} ms, unpause ${figures.floor.unpauseMs.toFixed(1)} ms (do-nothing container, medians)`);
    log(`  wake phases (mean ms): ${JSON.stringify(figures.phases, (_k, v) => (typeof v === 'number' ? Math.round(v * 1000) : v))}`);
    figures.idle = await idleMemory(stack, 'stopped');
    log(`  an idle iris container: ${figures.idle.statsMiB.toFixed(1)} MiB (docker stats); its process: RSS ${figures.idle.rssMiB.toFixed(1)} MiB, anonymous ${figures.idle.anonMiB.toFixed(1)}, file-backed ${figures.idle.fileMiB.toFixed(1)}; V8 heaps ${figures.idle.heaps.map((h) => `${h.thread} ${h.heapMiB.toFixed(1)} (+${h.externalMiB.toFixed(1)} external)`).join(', ')}`);
  } finally {
    await teardown(stack);
  }
  if (memoryFunctions > 2) {
    log(`\nmemory: ${memoryFunctions} functions, ${memoryFunctions - 2} of which go to sleep`);
    const declarations: Record<string, string> = {};
    for (let i = 1; i <= memoryFunctions; i++) declarations[`fn${String(i).padStart(2, '0')}`] = i <= 2 ? '{}' : '{ scale: { min: 0, idleSeconds: 45 } }';
    const many = await stackOf('memory', declarations);
    try {
      // Every function has just answered through the gateway (stackUp): all are awake.
      await new Promise((r) => setTimeout(r, 5000));
      const allOn = await projectMemoryMiB(many);
      log(`  all ${memoryFunctions} awake: ${allOn.total.toFixed(0)} MiB in ${allOn.containers} containers`);
      for (const fn of Object.keys(declarations).slice(2)) await untilAsleep(many, fn, 'exited');
      await new Promise((r) => setTimeout(r, 3000));
      const asleep = await projectMemoryMiB(many);
      log(`  ${memoryFunctions - 2} asleep: ${asleep.total.toFixed(0)} MiB in ${asleep.containers} containers`);
      figures.memory = { functions: memoryFunctions, asleep: memoryFunctions - 2, allOnMiB: allOn.total, asleepMiB: asleep.total, allOnContainers: allOn.containers, asleepContainers: asleep.containers };
    } finally {
      await teardown(many);
    }
  }
  figures.load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  return figures;
}

const ms = (v: number) => `${v.toFixed(v < 100 ? 1 : 0)} ms`;

/** The BENCHMARKS.md section. */
export function wakeSection(f: WakeFigures, command: string): string {
  const stopped = median(f.stoppedMs);
  const frozen = median(f.frozenMs);
  const rows = [
    `| asleep -> first answer through the gateway, stopped (\`wake: 'start'\`) | <= 500 ms | ${ms(stopped)} (min ${ms(Math.min(...f.stoppedMs))}, max ${ms(Math.max(...f.stoppedMs))}, ${f.stoppedMs.length} wakes) | ${stopped <= 500 ? 'met' : 'missed'} |`,
    `| asleep -> first answer through the gateway, frozen (\`wake: 'unpause'\`) | <= 30 ms | ${ms(frozen)} (min ${ms(Math.min(...f.frozenMs))}, max ${ms(Math.max(...f.frozenMs))}, ${f.frozenMs.length} wakes) | ${frozen <= 30 ? 'met' : 'missed'} |`,
    ...f.burst.map((b) => `| 16 concurrent requests during one wake (${b.mode}) | all answered | ${b.answered}/${b.sent} answered, the last after ${ms(b.ms)} | ${b.answered === b.sent ? 'met' : 'missed'} |`),
    // The goals of the edge-host runtime (issue 21): relative to the engine's own floors of this run.
    ...(f.floor ? [
      `| stopped wake, against the engine starting a do-nothing container from the same image (${ms(f.floor.startMs)}) | <= floor + 150 ms | +${ms(stopped - f.floor.startMs)} | ${stopped - f.floor.startMs <= 150 ? 'met' : 'missed'} |`,
      `| frozen wake, against the engine's unpause (${ms(f.floor.unpauseMs)}) | <= floor + 15 ms | +${ms(frozen - f.floor.unpauseMs)} | ${frozen - f.floor.unpauseMs <= 15 ? 'met' : 'missed'} |`,
    ] : []),
    ...(f.phases?.stopped?.process_start !== undefined && f.phases.stopped.model_load !== undefined ? (() => {
      const own = (f.phases.stopped.process_start + f.phases.stopped.model_load) * 1000;
      return [`| iris \`process_start\` + \`model_load\` (mean of the stopped wakes) | <= 100 ms | ${ms(own)} | ${own <= 100 ? 'met' : 'missed'} |`];
    })() : []),
    ...(f.idle ? [`| an idle iris container, \`docker stats\` | <= 30 MiB | ${f.idle.statsMiB.toFixed(1)} MiB | ${f.idle.statsMiB <= 30 ? 'met' : 'missed'} |`] : []),
    ...(f.memory ? [`| memory of ${f.memory.functions} functions, ${f.memory.asleep} asleep, against all awake | less | ${f.memory.asleepMiB.toFixed(0)} MiB (${f.memory.asleepContainers} containers running) against ${f.memory.allOnMiB.toFixed(0)} MiB (${f.memory.allOnContainers}): ${(f.memory.allOnMiB / f.memory.asleepMiB).toFixed(1)}x less | met |`] : []),
  ];
  return [
    SECTION_START,
    '## Scale to zero',
    '',
    `\`${command}\` (bench/wake.ts; load average at the end: ${f.load}). iris behind the gateway and the`,
    'activator on the real engine; each wake measured from a request sent to a function that is asleep',
    'to its answer at the client, the median of the wakes. Memory: `docker stats` of every container',
    'of the project (functions, gateway, activator).',
    '',
    '| what | target | measured | |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
    ...(f.phases ? [
      'Where a wake goes (the activator\'s `modelfn_activator_wake_seconds`, mean over the wakes above; each phase',
      'counted from the request that found the function asleep): `container_start` until the engine has',
      'started (unpaused) the container; `process_start` (Node and the bundle until the model begins to load),',
      '`model_load` and `warm_up` as the function reports them (their own length); `ready` until',
      'its control server says it listens and is ready; `first_answer` until the first answer left the activator.',
      '',
      ...(f.floor ? [
        `The engine alone, in the same run: starting a container that does nothing (Node waiting on a timer, from the`,
        `function's image, on the project's network) takes ${ms(f.floor.startMs)}, unpausing it ${ms(f.floor.unpauseMs)} (medians, Engine API as the`,
        'activator calls it): the floor under a stopped and a frozen wake on this machine.',
        '',
      ] : []),
      '| function | container_start | process_start | model_load | warm_up | ready | first_answer |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...Object.entries(f.phases).map(([fn, p]) => `| ${fn} | ${['container_start', 'process_start', 'model_load', 'warm_up', 'ready', 'first_answer'].map((phase) => (p[phase] === undefined ? '-' : ms(p[phase] * 1000))).join(' | ')} |`),
      '',
    ] : []),
    ...(f.idle ? [
      `An idle iris container (10 s after its start; its warm-up ran one inference): ${f.idle.statsMiB.toFixed(1)} MiB by \`docker stats\`.`,
      `Its process: resident ${f.idle.rssMiB.toFixed(1)} MiB, of which ${f.idle.fileMiB.toFixed(1)} MiB file-backed (the node binary's and onnxruntime's`,
      `pages, shared with every container of the image) and ${f.idle.anonMiB.toFixed(1)} MiB anonymous: ${f.idle.heaps.map((h) => `the ${h.thread} thread's V8 heap ${h.heapMiB.toFixed(1)} MiB (+${h.externalMiB.toFixed(1)} external)`).join(', ')},`,
      `and ${(f.idle.anonMiB - f.idle.heaps.reduce((sum, h) => sum + h.heapMiB, 0)).toFixed(1)} MiB of native memory besides (malloc: onnxruntime's session and arena, Node's and V8's own, thread stacks).`,
      '',
    ] : []),
    SECTION_END,
  ].join('\n');
}

/** Puts the section into BENCHMARKS.md, replacing the previous one. */
export function writeWakeSection(section: string): void {
  const file = join(ROOT, 'BENCHMARKS.md');
  const text = readFileSync(file, 'utf8');
  const start = text.indexOf(SECTION_START);
  const end = text.indexOf(SECTION_END);
  const next = start >= 0 && end > start ? `${text.slice(0, start)}${section}${text.slice(end + SECTION_END.length)}` : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
}

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  const { values } = parseArgs({ options: { rounds: { type: 'string', default: '7' }, functions: { type: 'string', default: '20' } } });
  const figures = await measureWakes(Number(values.rounds), Number(values.functions));
  const command = `npm run bench:wake${values.rounds !== '7' || values.functions !== '20' ? ` -- --rounds ${values.rounds} --functions ${values.functions}` : ''}`;
  writeWakeSection(wakeSection(figures, command));
  log('\nwrote the "Scale to zero" section of BENCHMARKS.md');
}
