/**
 * Image sizes, side by side: the shared runtime base against a plain Node image with
 * `npm install`, and each function's own layer against its model.
 *
 *   npm run bench:images      (needs the images: npm run build -- --images)
 * Writes bench/results/images.md.
 */
import { cpSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { discoverFunctions } from '../builder/functions.ts';
import { ROOT, dockerBuild, folderBytes, functionImage, imageSizes, run, runtimeImage } from '../builder/docker/images.ts';
import { readConfig } from '../runtime/core/config.ts';

export const PLAIN_IMAGE = 'modelfn/plain-node-compare:latest';
const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB (${(n / 1024 ** 2).toFixed(1)} MiB)`;

/** Builds the comparison image: the project installed the usual way (`npm ci --omit=dev`). */
async function buildPlainImage(): Promise<void> {
  const context = join(ROOT, 'dist/_plain');
  rmSync(context, { recursive: true, force: true });
  mkdirSync(context, { recursive: true });
  for (const f of ['package.json', 'package-lock.json', '.npmrc']) cpSync(join(ROOT, f), join(context, f));
  for (const dir of ['runtime', 'cli']) cpSync(join(ROOT, dir), join(context, dir), { recursive: true });
  cpSync(join(ROOT, 'functions/iris'), join(context, 'functions/iris'), { recursive: true });
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: context });
  await dockerBuild(PLAIN_IMAGE, join(ROOT, 'bench/plain-node.Dockerfile'), context);
}

export interface ImageReport {
  markdown: string;
  runtimeBytes: number;
  plainBytes: number;
  layers: { name: string; layerBytes: number; modelBytes: number }[];
}

export async function measureImages(): Promise<ImageReport> {
  await buildPlainImage();
  const runtime = await imageSizes(runtimeImage());
  const plain = await imageSizes(PLAIN_IMAGE);
  const node = await imageSizes('node:26-bookworm-slim');
  const standin = (await run('docker', ['image', 'inspect', '--format', '{{index .Config.Labels "org.modelfn.standin"}}', 'node:26-bookworm-slim'])).trim() === 'true';
  const { functions } = await discoverFunctions(join(ROOT, 'functions'), readConfig({}));
  const layers = [];
  for (const fn of functions) {
    const sizes = await imageSizes(functionImage(fn.name));
    layers.push({ name: fn.name, layerBytes: sizes.layers[0].size, modelBytes: statSync(fn.modelPath).size, totalBytes: sizes.total });
  }
  const nodeModules = folderBytes(join(ROOT, 'dist/_plain/node_modules'));
  const lines = [
    '## Image sizes',
    '',
    'Command: `npm run build -- --images && npm run bench:images`',
    '',
    '| image | size |',
    '| --- | --- |',
    `| \`${runtimeImage()}\` (shared runtime base: Node 26 + onnxruntime for linux/${process.arch}) | ${MB(runtime.total)} |`,
    `| \`${PLAIN_IMAGE}\` (node:26-bookworm-slim + \`npm ci --omit=dev\`) | ${MB(plain.total)} |`,
    `| of which node_modules | ${MB(nodeModules)} |`,
    '',
    `Ratio: the runtime base is ${(runtime.total / plain.total * 100).toFixed(0)}% of the plain image (target: base at most 150 MB).`,
    standin
      ? `Here \`node:26-bookworm-slim\` is a local stand-in (${MB(node.total)}: node and its libraries only); the upstream image is larger (Debian slim plus npm and yarn), so the plain image is larger still with the real base, and the full \`node:26\` image is larger again.`
      : `\`node:26-bookworm-slim\` is the upstream image (${MB(node.total)}).`,
    '',
    '| function | own layer | model | layer minus model (target ≤ 1 MB) | image total (shared layers counted once on disk) |',
    '| --- | --- | --- | --- | --- |',
    ...layers.map((l) => `| ${l.name} | ${(l.layerBytes / 1e3).toFixed(1)} kB | ${(l.modelBytes / 1e3).toFixed(1)} kB | ${((l.layerBytes - l.modelBytes) / 1e3).toFixed(1)} kB | ${MB(l.totalBytes)} |`),
    '',
  ];
  return { markdown: lines.join('\n'), runtimeBytes: runtime.total, plainBytes: plain.total, layers };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const report = await measureImages();
  mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/results/images.md'), `${report.markdown}\n`);
  process.stdout.write(`${report.markdown}\n`);
}
