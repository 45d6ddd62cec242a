/**
 * The first module a bundled function's entry imports (builder/bundle.ts), for its side effect: the
 * inference thread starts before the rest of the bundle (Hono, the pages, the declaration) is
 * evaluated, so Node's thread start and onnxruntime's native library load on the other core
 * meanwhile; the model goes to that thread once the main thread knows it. Only in a bundle, where
 * inference.mjs lies beside this code's file (main.mjs imports this module, then the server's
 * chunk: builder/bundle.ts).
 *
 * The build also tells the bundle its model files (MODELFN_BUNDLE_MODELS, esbuild's define in builder/bundle.ts), so
 * the thread creates the session of the one this process will most likely serve (MODELFN_VERSION's,
 * else the function's default) with the settings the environment gives, while the main thread
 * loads. The main thread still resolves the model as always and sends its path; the thread takes
 * the session it made only if that is the same file with the same options.
 */
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prestartInferenceThread } from '../engine/inference-thread.ts';
import { modelGuess, wantsInferenceThread, type BundleModels } from './early-plan.ts';

declare const MODELFN_BUNDLE_MODELS: BundleModels | undefined;
/** Set by the build (esbuild's define); undefined where this runs from source. */
const BUNDLE_MODELS = typeof MODELFN_BUNDLE_MODELS === 'undefined' ? undefined : MODELFN_BUNDLE_MODELS;

if (wantsInferenceThread(process.env)) {
  prestartInferenceThread(new URL('./inference.mjs', import.meta.url), modelGuess(process.env, BUNDLE_MODELS, dirname(fileURLToPath(import.meta.url))));
}
