/**
 * Container images: the shared runtime base (Node + onnxruntime for one platform), one thin
 * image per function, and the gateway. Built with the Docker CLI, for this machine's architecture
 * or another one (`arch`: x64 or arm64; another one's RUN steps run under emulation).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VERSION } from '../../runtime/core/version.ts';
import { PRIME_SWITCH } from '../../runtime/serve/early-plan.ts';
import * as policy from '../policy.ts';

export const ROOT = join(import.meta.dirname, '../..');

/** The runtime base's tag; another architecture's than this machine's gets its own (`-arm64`). */
export const runtimeImage = (arch: string = process.arch) => `modelfn/runtime:${VERSION}${arch === process.arch ? '' : `-${arch}`}`;
/** Tag of function and gateway images: MODELFN_IMAGE_TAG, default `latest`. */
export const imageTag = (env: NodeJS.ProcessEnv = process.env) => env.MODELFN_IMAGE_TAG || 'latest';
export const functionImage = (name: string, tag = imageTag()) => policy.functionImage(name, tag);
export const gatewayImage = (tag = imageTag()) => policy.gatewayImage(tag);
export const activatorImage = (tag = imageTag()) => policy.activatorImage(tag);

interface Platform {
  /** onnxruntime-node's folder for the platform. */
  ortDir: string;
  libDir: string;
  loader: string;
  /** Docker's name of the platform (`docker build --platform`). */
  docker: string;
  /** Docker Hub's namespace of official images for this architecture alone (arm64v8/node, ...). */
  hubNamespace: string;
}

const PLATFORMS: Record<string, Platform> = {
  x64: { ortDir: 'linux/x64', libDir: 'x86_64-linux-gnu', loader: '/lib64/ld-linux-x86-64.so.2', docker: 'linux/amd64', hubNamespace: 'amd64' },
  arm64: { ortDir: 'linux/arm64', libDir: 'aarch64-linux-gnu', loader: '/lib/ld-linux-aarch64.so.1', docker: 'linux/arm64', hubNamespace: 'arm64v8' },
};

/** The architectures images can be built for. */
export const ARCHES = Object.keys(PLATFORMS);

export function platformOf(arch: string = process.arch): Platform {
  const platform = PLATFORMS[arch];
  if (!platform) throw new Error(`no runtime image for architecture ${arch} (supported: ${Object.keys(PLATFORMS).join(', ')})`);
  return platform;
}

/** Runs a command, streaming nothing; rejects with its output when it fails. */
export function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd ?? ROOT, env: options.env ?? process.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')} failed (${code}):\n${out.slice(-3000)}`))));
    if (options.input !== undefined) {
      // A command that exits without reading its input must not crash us with EPIPE.
      child.stdin!.on('error', () => {});
      child.stdin!.end(options.input);
    }
  });
}

function copyJs(from: string, to: string): void {
  cpSync(from, to, { recursive: true, filter: (src) => statSync(src).isDirectory() || (src.endsWith('.js') && !src.endsWith('.d.js')) || src.endsWith('.json') });
}

/**
 * The runtime image's build context: onnxruntime-node with only the target platform's native
 * files (about 46 MB instead of the package's 290 MB), onnxruntime-common, the health check.
 */
export function prepareRuntimeContext(distRoot: string, arch: string = process.arch): string {
  const platform = platformOf(arch);
  const context = join(distRoot, '_runtime');
  rmSync(context, { recursive: true, force: true });
  const modules = join(ROOT, 'node_modules');
  const ortNode = join(context, 'node_modules/onnxruntime-node');
  mkdirSync(ortNode, { recursive: true });
  copyFileSync(join(modules, 'onnxruntime-node/package.json'), join(ortNode, 'package.json'));
  copyJs(join(modules, 'onnxruntime-node/dist'), join(ortNode, 'dist'));
  const native = join('bin/napi-v6', platform.ortDir);
  cpSync(join(modules, 'onnxruntime-node', native), join(ortNode, native), { recursive: true });
  const ortCommon = join(context, 'node_modules/onnxruntime-common');
  mkdirSync(ortCommon, { recursive: true });
  copyFileSync(join(modules, 'onnxruntime-common/package.json'), join(ortCommon, 'package.json'));
  copyJs(join(modules, 'onnxruntime-common/dist/cjs'), join(ortCommon, 'dist/cjs'));
  copyFileSync(join(ROOT, 'docker/healthcheck.mjs'), join(context, 'healthcheck.mjs'));
  mkdirSync(join(context, 'compile-cache'));
  return context;
}

/**
 * Makes sure the upstream base images exist (pulled, or local stand-ins where no registry
 * answers), and for another architecture its node image.
 */
export async function ensureBaseImages(arch: string = process.arch): Promise<string> {
  return run('bash', [join(ROOT, 'scripts/base-images.sh'), ...(arch === process.arch ? [] : ['--arch', arch])]);
}

export async function dockerBuild(tag: string, dockerfile: string, context: string, args: Record<string, string> = {}, arch: string = process.arch): Promise<void> {
  const buildArgs = Object.entries(args).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
  await run('docker', ['build', '--quiet', '--platform', platformOf(arch).docker, '-t', tag, '-f', dockerfile, ...buildArgs, context]);
}

/**
 * The node image the runtime's build stage starts from: docker/runtime.Dockerfile's NODE_IMAGE,
 * or for another architecture than this machine's the same image in Docker Hub's namespace for
 * that architecture (arm64v8/node:26-bookworm): a local engine keeps one image per name.
 */
export function nodeBuildImage(arch: string = process.arch): string {
  const image = /^ARG NODE_IMAGE=(\S+)$/m.exec(readFileSync(join(ROOT, 'docker/runtime.Dockerfile'), 'utf8'))?.[1];
  if (!image) throw new Error('docker/runtime.Dockerfile names no NODE_IMAGE');
  return arch === process.arch ? image : `${platformOf(arch).hubNamespace}/${image}`;
}

export async function buildRuntimeImage(distRoot: string, arch: string = process.arch): Promise<string> {
  const platform = platformOf(arch);
  const context = prepareRuntimeContext(distRoot, arch);
  await dockerBuild(runtimeImage(arch), join(ROOT, 'docker/runtime.Dockerfile'), context, { NODE_IMAGE: nodeBuildImage(arch), LIBDIR: platform.libDir, LOADER: platform.loader }, arch);
  return runtimeImage(arch);
}

/**
 * For another architecture than this machine's, the image is built without Node's compile cache:
 * its one start would run under emulation, where qemu-user before 8.2 (Debian 12 has 7.2) shows the
 * host's /proc/cpuinfo and onnxruntime's CPU detection crashes on it (PRIME_SWITCH, runtime/serve/early-plan.ts).
 */
function crossBuildArgs(arch: string): Record<string, string> {
  return arch === process.arch ? {} : { [PRIME_SWITCH]: 'false' };
}

/** A function's image: its bundle folder (dist/<name>) on the runtime image, source maps left out. */
export async function buildFunctionImage(name: string, distRoot: string, arch: string = process.arch): Promise<string> {
  const context = join(distRoot, name);
  if (!existsSync(join(context, 'main.mjs'))) throw new Error(`${context}: no bundle; run the build first`);
  writeFileSync(join(context, '.dockerignore'), '*.map\n.dockerignore\n');
  await dockerBuild(functionImage(name), join(ROOT, 'docker/function.Dockerfile'), context, { RUNTIME_IMAGE: runtimeImage(arch), ...crossBuildArgs(arch) }, arch);
  return functionImage(name);
}

/** The activator's image: its bundle (dist/_activator) on the runtime image, like a function's. */
export async function buildActivatorImage(distRoot: string, arch: string = process.arch): Promise<string> {
  const context = join(distRoot, '_activator');
  if (!existsSync(join(context, 'main.mjs'))) throw new Error(`${context}: no activator bundle; run the build first`);
  writeFileSync(join(context, '.dockerignore'), '*.map\n.dockerignore\n');
  await dockerBuild(activatorImage(), join(ROOT, 'docker/function.Dockerfile'), context, { RUNTIME_IMAGE: runtimeImage(arch), ...crossBuildArgs(arch) }, arch);
  return activatorImage();
}

/** The gateway image, from nginx/Dockerfile with the build's gateway folder (nginx.conf, swarm.conf and the page) as its context. */
export async function buildGatewayImage(context: string): Promise<string> {
  await dockerBuild(gatewayImage(), join(ROOT, 'nginx/Dockerfile'), context);
  return gatewayImage();
}

/** Bytes of an image, and of each of its layers (newest first). */
export async function imageSizes(tag: string): Promise<{ total: number; layers: { size: number; createdBy: string }[] }> {
  const total = Number((await run('docker', ['image', 'inspect', '--format', '{{.Size}}', tag])).trim());
  const history = await run('docker', ['history', '--no-trunc', '--human=false', '--format', '{{.Size}}\t{{.CreatedBy}}', tag]);
  const layers = history.trim().split('\n').map((line) => {
    const [size, createdBy] = line.split('\t');
    return { size: Number(size), createdBy };
  });
  return { total, layers };
}

/** Total size of the files under a folder. */
export function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    total += entry.isDirectory() ? folderBytes(path) : statSync(path).size;
  }
  return total;
}
