/**
 * The first module a bundled function's entry imports (builder/bundle.ts), for its side effect: the
 * inference thread starts before the rest of the bundle (Hono, the pages, the declaration) is
 * evaluated, so Node's thread start and onnxruntime's native library load on the other core
 * meanwhile; the model goes to that thread once the main thread knows it. Only in a bundle, where
 * inference.mjs lies beside this code's file (main.mjs).
 */
import cluster from 'node:cluster';
import { readConfig } from '../core/config.ts';
import { prestartInferenceThread } from '../engine/inference-thread.ts';

/**
 * Whether this process will load a model on an inference thread: the thread is on, and this is
 * not the primary that only forks several workers. A bad setting says no (the start reports it).
 *
 * @example wantsInferenceThread({ MODELFN_INFERENCE_THREAD: 'false' }); // false
 */
export function wantsInferenceThread(env: NodeJS.ProcessEnv, isPrimary = cluster.isPrimary, argv: readonly string[] = process.argv): boolean {
  // An image build told not to fill the compile cache (another architecture, under emulation:
  // runtime/serve/bundle.ts) loads no model, and onnxruntime must not load either.
  if (argv.includes('--prime-compile-cache') && env.MODELFN_PRIME_COMPILE_CACHE === 'false') return false;
  try {
    const config = readConfig(env);
    return config.inferenceThread && (config.workers <= 1 || !isPrimary);
  } catch {
    return false;
  }
}

if (wantsInferenceThread(process.env)) prestartInferenceThread(new URL('./inference.mjs', import.meta.url));
