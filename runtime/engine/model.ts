/**
 * Loading an ONNX model with onnxruntime and describing its inputs and outputs.
 */
import { readFile } from 'node:fs/promises';
import ort from 'onnxruntime-node';
import { BatchQueue, canBatch, type BatchObserver, type BatchOptions } from './batch.ts';
import { datatypeOfOrtType } from '../tensor/datatypes.ts';
import type { Feeds, Fetches, TensorSpec } from '../tensor/types.ts';
import { SessionCreateError, startInferenceThread } from './inference-thread.ts';

/** A loaded model: what functions and the protocol routes run inference with. */
export interface Model {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Milliseconds spent loading the model. */
  readonly loadMs: number;
  /** Whether requests are joined into batches (asked for, and the model has a batch dimension). */
  readonly batching: boolean;
  /**
   * Runs inference. `outputNames` limits the outputs computed (all by default).
   *
   * @example const { probabilities } = await model.run({ input: new ort.Tensor('float32', data, [1, 4]) });
   */
  run(feeds: Feeds, outputNames?: readonly string[]): Promise<Fetches>;
  /** Frees the session (and its thread). */
  release(): Promise<void>;
}

/** A model file that is missing, unreadable, or not a model onnxruntime can serve. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
}

export interface LoadModelOptions {
  intraOpThreads?: number;
  interOpThreads?: number;
  /** Let onnxruntime's threads spin while waiting for work (lower latency, busier cores). */
  spinning?: boolean;
  /** Run inference on a thread of its own, keeping the event loop free (default true). */
  thread?: boolean;
  /** Called with the seconds each run took. */
  observeInference?: (seconds: number) => void;
  /** Dynamic batching, when enabled and the model has a batch dimension. */
  batching?: BatchOptions & { enabled: boolean };
  batchObserver?: BatchObserver;
}

function specOf(meta: ort.InferenceSession.ValueMetadata, path: string, role: string): TensorSpec {
  if (!meta.isTensor) throw new ModelLoadError(`${path}: ${role} '${meta.name}' is not a tensor (sequences and maps are not supported)`);
  const info = datatypeOfOrtType(meta.type);
  if (!info) throw new ModelLoadError(`${path}: ${role} '${meta.name}' has type ${meta.type}, which the protocol cannot carry`);
  const shape = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
  return { name: meta.name, datatype: info.datatype, shape, info };
}

/**
 * Loads a model file; throws ModelLoadError with one line naming the file and the problem.
 *
 * @example const model = await loadModel('functions/iris/model.onnx');
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  const started = performance.now();
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(code === 'ENOENT' ? `${path}: model file not found` : `${path}: cannot read the model (${code ?? String(err)})`);
  }
  let session: Pick<ort.InferenceSession, 'inputMetadata' | 'outputMetadata' | 'release'> & { run(feeds: Feeds, names?: readonly string[]): Promise<Fetches> };
  try {
    // Kernel failures become 400s for the client; onnxruntime's own error lines would only duplicate them.
    const sessionOptions: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 4 };
    if (!options.spinning) {
      // onnxruntime's pool threads spin while waiting for work by default: on a small host that
      // burns the cores Node and nginx need between requests.
      sessionOptions.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
    }
    if (options.intraOpThreads) sessionOptions.intraOpNumThreads = options.intraOpThreads;
    if (options.interOpThreads) sessionOptions.interOpNumThreads = options.interOpThreads;
    if (options.thread ?? true) {
      session = await startInferenceThread(bytes, sessionOptions);
    } else {
      const direct = await ort.InferenceSession.create(bytes, sessionOptions);
      session = {
        inputMetadata: direct.inputMetadata,
        outputMetadata: direct.outputMetadata,
        release: () => direct.release(),
        run: (feeds, names) => (names ? direct.run(feeds, names as string[]) : direct.run(feeds)),
      };
    }
  } catch (err) {
    const reason = String((err as Error)?.message ?? err).split('\n')[0];
    const threadFailed = (options.thread ?? true) && !(err instanceof SessionCreateError);
    throw new ModelLoadError(threadFailed ? `${path}: the inference thread failed to start: ${reason}` : `${path}: not a valid ONNX model (onnxruntime: ${reason})`);
  }
  const inputs = session.inputMetadata.map((m) => specOf(m, path, 'input'));
  const outputs = session.outputMetadata.map((m) => specOf(m, path, 'output'));
  const loadMs = performance.now() - started;
  const observe = options.observeInference;
  const runSession = async (feeds: Feeds, outputNames?: readonly string[]): Promise<Fetches> => {
    const t0 = performance.now();
    const result = await session.run(feeds, outputNames);
    observe?.((performance.now() - t0) / 1000);
    return result;
  };
  const outputNames = outputs.map((o) => o.name);
  const queue = options.batching?.enabled && canBatch(inputs, outputs)
    ? new BatchQueue(runSession, outputNames, options.batching, options.batchObserver)
    : undefined;
  return {
    release: () => session.release(),
    inputs,
    outputs,
    loadMs,
    batching: queue !== undefined,
    run: queue ? (feeds, names) => queue.run(feeds, names) : runSession,
  };
}
