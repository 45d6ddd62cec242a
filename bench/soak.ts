/**
 * Soak: sustained load through the nginx gateway with wrk, counting every error and watching the
 * resident memory of the function containers.
 *
 *   npm run soak -- [--seconds 180] [--connections 64]
 * Builds and starts the repository's stack on a free loopback port, soaks it, takes it down, and
 * writes bench/results/soak.md. A short version runs in `npm test` (test/e2e/compose.test.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, run } from '../builder/docker/images.ts';
import { wrk, type LoadResult } from './wrk.ts';

export interface SoakResult {
  seconds: number;
  connections: number;
  load: LoadResult;
  /** Anonymous resident memory per container (MiB): median of the last samples of the warm-up and of the soak. */
  memory: { container: string; warm: number; end: number; growth: number }[];
}

/**
 * Anonymous resident memory of a container (MiB), read from its memory cgroup: the heap and
 * buffers, without the page cache of the mapped node and onnxruntime binaries.
 */
function containerRss(id: string): number {
  for (const file of [`/sys/fs/cgroup/memory/docker/${id}/memory.stat`, `/sys/fs/cgroup/system.slice/docker-${id}.scope/memory.stat`]) {
    if (!existsSync(file)) continue;
    const stat = readFileSync(file, 'utf8');
    const bytes = Number(/^(?:total_rss|anon) (\d+)$/m.exec(stat)?.[1]);
    if (bytes) return bytes / 1024 ** 2;
  }
  return NaN;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Runs `work` while sampling each container's memory every second; the median of the last 5 samples counts (GC makes single readings jumpy). */
async function sampled<T>(ids: string[], work: Promise<T>): Promise<{ result: T; memory: Map<string, number> }> {
  const samples = new Map<string, number[]>(ids.map((id) => [id, []]));
  const timer = setInterval(() => {
    for (const id of ids) samples.get(id)!.push(containerRss(id));
  }, 1000);
  try {
    const result = await work;
    return { result, memory: new Map(ids.map((id) => [id, median(samples.get(id)!.slice(-5))])) };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Holds `connections` connections of iris predictions against `url` for `seconds`, after a
 * warm-up (a quarter of that time, at least 15 s: V8 sizes its heaps to the load for a while);
 * memory is read after the warm-up and at the end.
 */
export async function soak(url: string, containers: string[], seconds: number, connections: number, workDir: string): Promise<SoakResult> {
  const request = {
    url: `${url}/iris/predict`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }),
  };
  mkdirSync(workDir, { recursive: true });
  const ids = containers.map((c) => run('docker', ['inspect', '--format', '{{.Id}}', c]).then((o) => o.trim()));
  const full = await Promise.all(ids);
  const warm = await sampled(full, wrk(request, connections, Math.max(15, Math.round(seconds / 4)), workDir, 'soak-warm'));
  const end = await sampled(full, wrk(request, connections, seconds, workDir, 'soak', { statuses: true }));
  const load = end.result;
  const memory = full.map((id) => {
    const w = warm.memory.get(id)!;
    const e = end.memory.get(id)!;
    return { container: id.slice(0, 12), warm: w, end: e, growth: (e - w) / w };
  });
  return { seconds, connections, load, memory };
}

export function soakMarkdown(result: SoakResult, command: string): string {
  return [
    '## Soak',
    '',
    `Command: \`${command}\``,
    '',
    `${result.connections} connections for ${result.seconds} s (after a warm-up) through nginx (iris, 2 rows per request): ` +
      `${result.load.requests} requests, ${result.load.rps.toFixed(0)} requests/s, p50 ${result.load.p50.toFixed(2)} ms, p99 ${result.load.p99.toFixed(2)} ms, **${result.load.errors} errors**.`,
    '',
    '| container | MiB at the end of warm-up | MiB at the end | growth |',
    '| --- | --- | --- | --- |',
    ...result.memory.map((m) => `| ${m.container} | ${m.warm.toFixed(1)} | ${m.end.toFixed(1)} | ${(m.growth * 100).toFixed(1)}% |`),
    '',
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '180' }, connections: { type: 'string', default: '64' } } });
  const { runBuild } = await import('../build.ts');
  const { stackDown, stackUp } = await import('../builder/docker/compose.ts');
  const { freePort } = await import('../test/docker.ts');
  const env = { MODELFN_IMAGE_TAG: 'soak', MODELFN_PORT: String(await freePort()), MODELFN_PROJECT: 'modelfn-soak' };
  Object.assign(process.env, env);
  const root = join(ROOT, 'dist/soak');
  mkdirSync(root, { recursive: true });
  if (await runBuild({ functionsDir: join(ROOT, 'functions'), outDir: join(root, 'dist'), root, images: true, check: false, log: () => {} })) process.exit(1);
  const stack = { root, project: 'modelfn-soak', env };
  const url = await stackUp(stack, ['digits', 'iris', 'vad']);
  try {
    const ids = (await run('docker', ['ps', '-q', '--filter', 'label=com.docker.compose.project=modelfn-soak', '--filter', 'label=com.docker.compose.service=iris'])).trim().split('\n');
    const result = await soak(url, ids, Number(values.seconds), Number(values.connections), join(root, 'wrk'));
    const text = soakMarkdown(result, `npm run soak -- --seconds ${values.seconds} --connections ${values.connections}`);
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench/results/soak.md'), text);
    process.stdout.write(text);
  } finally {
    await stackDown(stack);
  }
}
