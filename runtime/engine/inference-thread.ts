/**
 * Inference on a thread of its own. onnxruntime-node runs a session synchronously on the
 * calling thread, so a long run on the main thread would stall every other request, health
 * checks and timeouts included. Here the session lives in a worker thread: the main thread only
 * parses, validates and answers, and tensors cross between the two by transfer, not by copy.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import type { Feeds, Fetches } from '../tensor/types.ts';

/** The script a new inference thread runs: inference-worker.mjs from source, or the bundle itself. */
let workerScript: URL = new URL('./inference-worker.mjs', import.meta.url);

/** Bundles call this with their own URL: the bundle then doubles as the thread's script. */
export function setInferenceWorkerScript(url: string | URL): void {
  workerScript = new URL(url);
}

interface WireTensor {
  name: string;
  type: ort.Tensor.Type;
  dims: readonly number[];
  data: ArrayBufferView | string[];
}

interface Job {
  id: number;
  feeds: WireTensor[];
  outputs?: readonly string[];
}

type Reply =
  | { kind: 'ready'; inputs: ort.InferenceSession.ValueMetadata[]; outputs: ort.InferenceSession.ValueMetadata[] }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: WireTensor[] }
  | { kind: 'error'; id: number; message: string };

export interface ThreadInit {
  modelfnInferenceThread: true;
  model: Uint8Array;
  options: ort.InferenceSession.SessionOptions;
}

/**
 * A tensor ready to cross threads, and whether its buffer may move rather than be copied.
 * A view into a larger buffer (a request body, Node's shared pool) is copied out first: moving
 * that buffer would take its other contents along. Tensors the caller still holds (a function's
 * own code may reuse an input tensor) are copied; the thread's outputs move.
 */
function toWire(name: string, tensor: ort.Tensor): WireTensor {
  const data = tensor.data;
  if (Array.isArray(data)) return { name, type: tensor.type, dims: tensor.dims, data };
  const view = data as Float32Array;
  const whole = view.byteOffset === 0 && view.buffer instanceof ArrayBuffer && view.byteLength === view.buffer.byteLength;
  return { name, type: tensor.type, dims: tensor.dims, data: whole ? view : view.slice() };
}

function fromWire(t: WireTensor): ort.Tensor {
  return new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims);
}

function transferables(tensors: WireTensor[]): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  for (const t of tensors) if (!Array.isArray(t.data)) seen.add((t.data as ArrayBufferView).buffer as ArrayBuffer);
  return [...seen];
}

/** True when this thread was started as an inference thread. */
export function isInferenceThread(): boolean {
  return !isMainThread && (workerData as Partial<ThreadInit> | undefined)?.modelfnInferenceThread === true;
}

/** The inference thread's side: load the session, then run jobs as they come. */
export async function serveInferenceThread(): Promise<void> {
  const init = workerData as ThreadInit;
  const port = parentPort!;
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(init.model, init.options);
  } catch (err) {
    port.postMessage({ kind: 'failed', message: String((err as Error)?.message ?? err) } satisfies Reply);
    return;
  }
  port.postMessage({ kind: 'ready', inputs: [...session.inputMetadata], outputs: [...session.outputMetadata] } satisfies Reply);
  port.on('message', async (job: Job | 'release') => {
    if (job === 'release') {
      await session.release();
      port.close();
      return;
    }
    try {
      const feeds: Feeds = {};
      for (const t of job.feeds) feeds[t.name] = fromWire(t);
      const result = job.outputs ? await session.run(feeds, job.outputs as string[]) : await session.run(feeds);
      const outputs = Object.entries(result).map(([name, tensor]) => toWire(name, tensor));
      port.postMessage({ kind: 'result', id: job.id, outputs } satisfies Reply, transferables(outputs));
    } catch (err) {
      port.postMessage({ kind: 'error', id: job.id, message: String((err as Error)?.message ?? err) } satisfies Reply);
    }
  });
}

/** onnxruntime refused the model (as opposed to the thread failing to start). */
export class SessionCreateError extends Error {
  override name = 'SessionCreateError';
}

export interface ThreadSession {
  inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  run(feeds: Feeds, outputNames?: readonly string[]): Promise<Fetches>;
  release(): Promise<void>;
}

/**
 * Starts an inference thread for a model; rejects with onnxruntime's message if it cannot load.
 *
 * @example const session = await startInferenceThread(bytes, { graphOptimizationLevel: 'all' });
 */
export function startInferenceThread(model: Uint8Array, options: ort.InferenceSession.SessionOptions): Promise<ThreadSession> {
  const worker = new Worker(workerScript, { workerData: { modelfnInferenceThread: true, model, options } satisfies ThreadInit });
  const pending = new Map<number, { resolve(f: Fetches): void; reject(e: unknown): void }>();
  let next = 0;
  let dead: Error | undefined;
  const failAll = (err: Error) => {
    dead = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };
  return new Promise((resolve, reject) => {
    worker.once('error', (err: Error) => {
      reject(err);
      failAll(err);
    });
    worker.once('exit', (code) => failAll(new Error(`inference thread exited (${code})`)));
    worker.on('message', (reply: Reply) => {
      switch (reply.kind) {
        case 'ready':
          resolve({
            inputMetadata: reply.inputs,
            outputMetadata: reply.outputs,
            run(feeds, outputNames) {
              if (dead) return Promise.reject(dead);
              const id = next++;
              const wire = Object.entries(feeds).map(([name, t]) => toWire(name, t));
              return new Promise<Fetches>((done, fail) => {
                pending.set(id, { resolve: done, reject: fail });
                // Inputs are copied (structured clone), never moved: the caller may use them again.
                worker.postMessage({ id, feeds: wire, outputs: outputNames } satisfies Job);
              });
            },
            async release() {
              worker.postMessage('release');
              await new Promise((done) => worker.once('exit', done));
            },
          });
          break;
        case 'failed':
          reject(new SessionCreateError(reply.message));
          void worker.terminate();
          break;
        case 'result': {
          const job = pending.get(reply.id);
          pending.delete(reply.id);
          const fetches: Fetches = {};
          for (const t of reply.outputs) fetches[t.name] = fromWire(t);
          job?.resolve(fetches);
          break;
        }
        case 'error': {
          const job = pending.get(reply.id);
          pending.delete(reply.id);
          job?.reject(new Error(reply.message));
          break;
        }
      }
    });
  });
}
