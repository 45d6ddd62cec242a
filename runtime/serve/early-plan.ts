/**
 * What a bundle's early inference thread (early-thread.ts) is started with: whether this process
 * will have one, and the model it will most likely be sent.
 */
import cluster from 'node:cluster';
import { join } from 'node:path';
import { readConfig, sessionSettingsOf } from '../core/config.ts';
import { sessionOptionsFor, type ModelGuess } from '../engine/inference-thread.ts';

/**
 * The argument the image build runs a bundle with (docker/function.Dockerfile): start as usual on
 * a loopback port, answer one request, stop, and leave Node's module compile cache
 * (NODE_COMPILE_CACHE, set by the runtime image) filled with the code a start runs, both threads'.
 */
export const PRIME_COMPILE_CACHE = '--prime-compile-cache';

/**
 * Set to `false` (a build argument of docker/function.Dockerfile) to build without the cache: the
 * build passes it for another architecture than its own, whose RUN steps run under emulation, where
 * qemu-user before 8.2 shows the host's /proc/cpuinfo and onnxruntime's CPU detection crashes on it.
 */
export const PRIME_SWITCH = 'MODELFN_PRIME_COMPILE_CACHE';

/** A bundle's model files, relative to its folder: the default one, and each version's. */
export interface BundleModels {
  default: string;
  versions: Record<string, string>;
}

/**
 * Whether this process will load a model on an inference thread: the thread is on, and this is
 * not the primary that only forks several workers. A bad setting says no (the start reports it).
 *
 * @example wantsInferenceThread({ MODELFN_INFERENCE_THREAD: 'false' }); // false
 */
export function wantsInferenceThread(env: NodeJS.ProcessEnv, isPrimary = cluster.isPrimary, argv: readonly string[] = process.argv): boolean {
  // An image build told not to fill the compile cache (another architecture, under emulation:
  // runtime/serve/bundle.ts) loads no model, and onnxruntime must not load either.
  if (argv.includes(PRIME_COMPILE_CACHE) && env[PRIME_SWITCH] === 'false') return false;
  try {
    const config = readConfig(env);
    return config.inferenceThread !== false && (config.workers <= 1 || !isPrimary);
  } catch {
    return false;
  }
}

/**
 * The model file and session options this process will most likely load, from the bundle's model
 * files and the environment; undefined when it cannot tell (a bad setting, an unknown version).
 *
 * @example modelGuess({}, { default: 'model.onnx', versions: { '1': 'model.onnx' } }, '/app/iris')?.path // '/app/iris/model.onnx'
 */
export function modelGuess(env: NodeJS.ProcessEnv, models: BundleModels | undefined, dir: string): ModelGuess | undefined {
  if (!models) return undefined;
  try {
    const config = readConfig(env);
    const file = config.version ? models.versions[config.version] : models.default;
    if (!file) return undefined;
    return {
      path: join(dir, file),
      options: sessionOptionsFor(sessionSettingsOf(config)),
    };
  } catch {
    return undefined;
  }
}
