/**
 * The build behind `modelfn build` (npm run build): discovers every function, validates all
 * declarations at once, bundles each with esbuild into dist/<name>/, writes the generated files
 * (builder/generate.ts), and with `images` builds the container images (builder/docker/images.ts).
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { bundleActivator, bundleFunction, type BundleResult } from './builder/bundle.ts';
import { discoverFunctions } from './builder/functions.ts';
import { ARCHES, buildActivatorImage, buildFunctionImage, buildGatewayImage, buildRuntimeImage, ensureBaseImages } from './builder/docker/images.ts';
import { gatewayPageFile, generatedFiles } from './builder/generate.ts';
import { FILES, GATEWAY_PAGE, scaledUnits } from './builder/policy.ts';
import { readConfig } from './runtime/core/config.ts';
import { describeFunctions } from './runtime/pages/describe.ts';
import { liveGatewayConfig } from './builder/docker/traffic.ts';

export interface BuildOptions {
  functionsDir: string;
  outDir: string;
  /** Folder receiving nginx/nginx.conf and docker-compose.yml. */
  root: string;
  images: boolean;
  /** The architecture of the runtime, function and activator images (x64, arm64; default this machine's). */
  arch?: string;
  check: boolean;
  log: (line: string) => void;
  /**
   * The compose project whose live traffic changes (`modelfn traffic`, builder/traffic.ts) the
   * gateway image keeps; the committed nginx/nginx.conf stays the declarations'. Changes whose
   * declared split changed since are dropped from the project's store.
   */
  trafficProject?: string;
  /** The same for the Swarm stack (`modelfn deploy`): its kept changes go into the image's swarm.conf. */
  trafficStack?: string;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}

function table(rows: BundleResult[]): string {
  const header = ['function', 'bundle', 'source map', 'model', 'output'];
  const body = rows.map((r) => [r.name, size(r.bundleBytes), size(r.mapBytes), size(r.modelBytes), r.outDir]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}

/** Runs the build; resolves to the process exit code. */
export async function runBuild(options: BuildOptions): Promise<number> {
  const { log } = options;
  if (options.arch !== undefined && !ARCHES.includes(options.arch)) {
    log(`modelfn build: --arch ${options.arch}: no images for that architecture (${ARCHES.join(' or ')})`);
    return 1;
  }
  // The built-in defaults, not the builder's environment: the same source gives the same files.
  const discovered = await discoverFunctions(options.functionsDir, readConfig({}));
  const { functions } = discovered;
  // Each model's metadata, read once: the list at GET / and the page show what each function really serves.
  // Read even when declarations have problems, so that a model that does not load is named in the same list.
  const described = await describeFunctions(functions);
  const problems = [...discovered.problems, ...described.flatMap((fn) => (fn.error ? [fn.error] : []))];
  if (problems.length) {
    log(`modelfn build: ${problems.length} problem${problems.length > 1 ? 's' : ''}:`);
    for (const p of problems) log(`  - ${p}`);
    return 1;
  }
  const files = generatedFiles(described);
  if (options.check) {
    const stale = Object.entries(files).filter(([path, text]) => {
      const file = join(options.root, path);
      return !existsSync(file) || readFileSync(file, 'utf8') !== text;
    });
    for (const [path] of stale) log(`modelfn build: ${path} is out of date with functions/; run npm run build`);
    return stale.length ? 1 : 0;
  }
  log(`modelfn build: ${functions.length} function${functions.length > 1 ? 's' : ''}`);
  const results: BundleResult[] = [];
  for (const fn of functions) {
    const started = performance.now();
    const result = await bundleFunction(fn, options.outDir);
    results.push(result);
    log(`  ✓ ${fn.name.padEnd(16)} ${fn.prefix.padEnd(18)} bundled in ${Math.round(performance.now() - started)} ms`);
  }
  const scaled = scaledUnits(functions).length > 0;
  if (scaled) {
    const started = performance.now();
    await bundleActivator(options.outDir);
    log(`  ✓ ${'activator'.padEnd(16)} ${'(scale to zero)'.padEnd(18)} bundled in ${Math.round(performance.now() - started)} ms`);
  }
  for (const [path, text] of Object.entries(files)) {
    const file = join(options.root, path);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
    log(`  ✓ wrote ${relative(process.cwd(), file) || file}`);
  }
  // The gateway image's context: its page and its config, side by side in the build output.
  const gateway = join(options.outDir, GATEWAY_PAGE.dir);
  mkdirSync(gateway, { recursive: true });
  writeFileSync(join(gateway, GATEWAY_PAGE.file), gatewayPageFile(described));
  writeFileSync(join(gateway, 'nginx.conf'), options.trafficProject ? liveGatewayConfig(described, options.root, options.trafficProject, log) : files[FILES.nginx]);
  writeFileSync(join(gateway, 'swarm.conf'), options.trafficStack ? liveGatewayConfig(described, options.root, options.trafficStack, log, 'swarm') : files[FILES.swarmNginx]);
  log(`  ✓ wrote ${relative(process.cwd(), join(gateway, GATEWAY_PAGE.file))} (the gateway's page, with nginx.conf and swarm.conf: its image's context)`);
  log('');
  log(table(results));
  if (options.images) {
    log('');
    const arch = options.arch ?? process.arch;
    const standins = (await ensureBaseImages(arch)).trim();
    if (standins) log(standins);
    const timed = async (label: string, work: () => Promise<string>) => {
      const started = performance.now();
      const tag = await work();
      log(`  ✓ image ${tag.padEnd(28)} ${label} (${Math.round(performance.now() - started)} ms)`);
    };
    const suffix = arch === process.arch ? '' : `, linux/${arch}`;
    await timed(`runtime base${suffix}`, () => buildRuntimeImage(options.outDir, arch));
    for (const fn of functions) await timed(`function ${fn.name}${suffix}`, () => buildFunctionImage(fn.name, options.outDir, arch));
    if (scaled) await timed(`activator${suffix}`, () => buildActivatorImage(options.outDir, arch));
    await timed('gateway', () => buildGatewayImage(gateway));
  }
  return 0;
}
