/**
 * The script of a bundled function's inference thread (builder/bundle.ts bundles it as inference.mjs
 * beside main.mjs): onnxruntime and the engine only. No HTTP, pages, zod or the function's
 * declaration, so the declaration's code runs once, on the main thread, and the thread holds
 * little besides the model.
 */
import { serveInferenceThread } from './inference-thread.ts';

await serveInferenceThread();
