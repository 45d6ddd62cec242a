/**
 * Soak: sustained load through the nginx gateway with wrk, counting every error and watching the
 * resident memory of the function containers.
 *
 *   npm run soak -- [--seconds 180] [--connections 64]
 * Builds and starts the repository's stack on a free loopback port, soaks it, takes it down, and
 * writes bench/results/soak.md. A short version runs in `npm test` (test/e2e/compose.test.ts).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, run } from '../build/images.ts';
import { wrk, type LoadResult } from './wrk.ts';

export interface SoakResult {
  seconds: number;
  connections: number;
  load: LoadResult;
  /** Resident memory per container (MiB) after warm-up and at the end. */
  memory: { container: string; warm: number; end: number; growth: number }[];
}

async function containerMemory(ids: string[]): Promise<Map<string, number>> {
  const out = await run('docker', ['stats', '--no-stream', '--format', '{{.ID}} {{.Name}} {{.MemUsage}}', ...ids]);
  const result = new Map<string, number>();
  for (const line of out.trim().split('\n')) {
    const [, name, usage] = line.split(' ');
    const m = /^([\d.]+)([KMG]i?B)/.exec(usage);
    if (!m) continue;
    const scale: Record<string, number> = { KiB: 1 / 1024, kB: 1 / 1000, MiB: 1, MB: 1, GiB: 1024, GB: 1000 };
    result.set(name, Number(m[1]) * (scale[m[2]] ?? 1));
  }
  return result;
}

/**
 * Holds `connections` connections of iris predictions against `url` for `seconds`, after a
 * warm-up of a fifth of that time; memory is read after the warm-up and at the end.
 */
export async function soak(url: string, containers: string[], seconds: number, connections: number, workDir: string): Promise<SoakResult> {
  const request = {
    url: `${url}/iris/predict`,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ instances: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] }),
  };
  mkdirSync(workDir, { recursive: true });
  await wrk(request, connections, Math.max(2, Math.round(seconds / 5)), workDir, 'soak-warm');
  const warm = await containerMemory(containers);
  const load = await wrk(request, connections, seconds, workDir, 'soak');
  const end = await containerMemory(containers);
  const memory = [...warm.entries()].map(([container, w]) => {
    const e = end.get(container) ?? NaN;
    return { container, warm: w, end: e, growth: (e - w) / w };
  });
  return { seconds, connections, load, memory };
}

export function soakMarkdown(result: SoakResult, command: string): string {
  return [
    '## Soak',
    '',
    `Command: \`${command}\``,
    '',
    `${result.connections} connections for ${result.seconds} s through nginx (iris, 2 rows per request): ` +
      `${result.load.requests} requests, ${result.load.rps.toFixed(0)} requests/s, p50 ${result.load.p50.toFixed(2)} ms, p99 ${result.load.p99.toFixed(2)} ms, **${result.load.errors} errors**.`,
    '',
    '| container | MiB after warm-up | MiB at the end | growth |',
    '| --- | --- | --- | --- |',
    ...result.memory.map((m) => `| ${m.container} | ${m.warm.toFixed(1)} | ${m.end.toFixed(1)} | ${(m.growth * 100).toFixed(1)}% |`),
    '',
  ].join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '180' }, connections: { type: 'string', default: '64' } } });
  const { runBuild } = await import('../build.ts');
  const { stackDown, stackUp } = await import('../build/stack.ts');
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
