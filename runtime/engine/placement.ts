/**
 * Where a small model runs. Handing a run to the inference thread and back costs the main thread
 * a structured clone and a message each way, and the request two thread wake-ups: some 0.1 ms on
 * the machines we measured, several times what a small model's run costs (iris: 0.02 ms). Such a
 * model runs better on the main thread, as long as no request of it can hold that thread for
 * long: each request's run is estimated from its size, and a large one still goes to a thread.
 */
import type * as ort from 'onnxruntime-common';
import type { Feeds, TensorSpec } from '../tensor/types.ts';

/** A model moves to the main thread only when a run of one row there (one onnxruntime thread) takes at most this, ms. */
export const MAIN_THREAD_RUN_MAX_MS = 0.1;
/** A request runs on the main thread when its run is estimated to take at most this, ms. */
export const MAIN_THREAD_BUDGET_MS = 1;
/** A run on the main thread that took longer than this sends the model back to its thread, ms. */
export const MAIN_THREAD_RUN_LIMIT_MS = 5;
/** Rows in the second calibration run (the first has one), when the model has a dynamic dimension. */
export const CALIBRATION_ROWS = 64;

/** A model file larger than this stays on its thread (a second session of it would block the main thread while it loads). */
export const MAX_MODEL_BYTES = 16 * 1024 * 1024;
/** A run of one row on the thread, hop included, must take at most this before the model is timed on the main thread, ms. */
export const THREAD_PROBE_MAX_MS = 2;
/** A model with more top-level nodes than this is not read for its operators, and stays on its thread. */
export const MAX_NODES_READ = 256;

/**
 * Operators whose work the values of their inputs decide, not the inputs' size: control flow,
 * and operators that make tensors of a size read from an input. A model using one can take any
 * time on a small request, so its runs stay on its thread.
 */
const VALUE_SIZED = new Set([
  'Loop', 'Scan', 'If', 'Range', 'ConstantOfShape', 'Expand', 'Tile', 'Resize', 'Upsample', 'Pad', 'CenterCropPad', 'OneHot', 'TopK',
  'NonMaxSuppression', 'RoiAlign', 'MaxRoiPool', 'MaxUnpool', 'Col2Im', 'DFT', 'STFT', 'HannWindow', 'HammingWindow', 'BlackmanWindow', 'MelWeightMatrix',
]);

/**
 * Whether a model's operators let its run's cost follow its inputs' size: none of VALUE_SIZED, and
 * none outside the ONNX domains (a custom operator could do anything).
 *
 * @example sizeBoundOperators(['Gemm', 'Softmax', 'ArgMax']) // true
 * @example sizeBoundOperators(['Squeeze', 'Loop']) // false
 */
export function sizeBoundOperators(operators: readonly string[]): boolean {
  return operators.every((op) => {
    const colon = op.lastIndexOf(':');
    const domain = colon < 0 ? '' : op.slice(0, colon);
    return (domain === '' || domain === 'ai.onnx.ml') && !VALUE_SIZED.has(op.slice(colon + 1));
  });
}

/** A run's expected cost: a fixed part, and a part that grows with the elements of its inputs. */
export interface RunCost {
  fixedMs: number;
  perElementMs: number;
}

/** Elements in a request's inputs, all inputs together. */
export function elementsOf(feeds: Feeds): number {
  let n = 0;
  for (const name in feeds) n += feeds[name].size;
  return n;
}

/** The run's expected time for a request with this many elements, ms. */
export function estimateMs(cost: RunCost, elements: number): number {
  return cost.fixedMs + cost.perElementMs * elements;
}

/**
 * The cost model through two timed runs (one row, and more when the model has a dynamic
 * dimension), or through one (no dynamic dimension: its requests are all that size). Erring high:
 * each element costs what an element of the larger run cost on average (its fixed part included),
 * so a noisy larger run can never make large requests look free.
 *
 * @example fitCost({ elements: 4, ms: 0.02 }, { elements: 256, ms: 0.05 }) // { fixedMs: 0.02, perElementMs: 0.000195... }
 */
export function fitCost(small: { elements: number; ms: number }, large?: { elements: number; ms: number }): RunCost {
  const widest = large && large.elements > small.elements ? large : small;
  return { fixedMs: small.ms, perElementMs: widest.ms / Math.max(1, widest.elements) };
}

/**
 * Inputs to time the model with: zeros, every dynamic dimension 1, except the first dynamic
 * dimension of each input, which is `rows`. Undefined when the model cannot move: an FP16 tensor
 * (the main thread's Float16Array is not what onnxruntime's binding reads), or a string input
 * (its cost is its strings' length, which counting elements cannot tell).
 */
export function calibrationFeeds(Tensor: typeof ort.Tensor, inputs: readonly TensorSpec[], outputs: readonly TensorSpec[], rows: number): Feeds | undefined {
  if ([...inputs, ...outputs].some((t) => t.datatype === 'FP16') || inputs.some((t) => t.datatype === 'BYTES')) return undefined;
  const feeds: Feeds = {};
  for (const spec of inputs) {
    let first = true;
    const dims = spec.shape.map((d) => {
      if (d >= 0) return d;
      const size = first ? rows : 1;
      first = false;
      return size;
    });
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[spec.name] = new Tensor(spec.info.ortType as 'float32', new spec.info.array!(n) as Float32Array, dims);
  }
  return feeds;
}

/** Whether any input has a dynamic dimension (so requests of it differ in size). */
export function hasDynamicDimension(inputs: readonly TensorSpec[]): boolean {
  return inputs.some((t) => t.shape.some((d) => d < 0));
}
