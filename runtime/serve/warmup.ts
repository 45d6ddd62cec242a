/**
 * The warm-up: one inference with the function's example (declared, or zeros from the model's
 * metadata) before the server turns ready, so onnxruntime's first-run allocations and the
 * codec's first compilation are not paid by the first real request.
 */
import type { FunctionHost } from '../function/host.ts';
import { decodeInferRequest, encodeInferResponse } from '../tensor/infer.ts';
import { exampleRequest } from '../pages/openapi.ts';
import { predictionsOf } from '../tensor/predictions.ts';

export interface WarmUpResult {
  ms: number;
  /** Why the example could not run (the function still serves: a warm-up is an optimisation). */
  error?: string;
}

/**
 * Runs the example once through the same decode, inference and encode as `/infer`, and keeps the
 * answers on the host for the docs (a warm-up is the one run that no request asked for).
 *
 * @example const { ms } = await warmUp(host, config.maxElements);
 */
export async function warmUp(host: FunctionHost, maxElements: number): Promise<WarmUpResult> {
  const started = performance.now();
  try {
    const model = host.model;
    const example = exampleRequest(host.fn, model.inputs);
    const request = decodeInferRequest(host.signature, new TextEncoder().encode(JSON.stringify(example)), undefined, maxElements);
    const fetches = await model.run(request.feeds, request.outputs.map((o) => o.name));
    const infer = encodeInferResponse(host.signature, request, fetches).body as string;
    const ms = performance.now() - started;
    // The answers the docs show beside the examples: /infer's, and /predict's for a model with one input.
    const [input] = model.inputs;
    host.exampleAnswers = {
      infer: JSON.parse(infer) as unknown,
      ...(model.inputs.length === 1 ? { predict: { predictions: predictionsOf(fetches, model.outputs.map((o) => o.name), request.feeds[input.name].dims[0]) } } : {}),
    };
    host.warmUpMs = ms;
    return { ms };
  } catch (err) {
    return { ms: performance.now() - started, error: String((err as Error)?.message ?? err).split('\n')[0] };
  }
}
