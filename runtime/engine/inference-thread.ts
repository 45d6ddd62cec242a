/**
 * Inference on a thread of its own. onnxruntime-node runs a session synchronously on the
 * calling thread, so a long run on the main thread would stall every other request, health
 * checks and timeouts included. Here the session lives in a worker thread: the main thread only
 * parses, validates and answers. Tensors cross between the two by transfer, not by copy, whenever
 * their owner gives them up (the runtime's decoded inputs and joined batches; every output).
 * A thread that dies rejects its pending runs with InferenceThreadExit and says so through `onExit`.
 *
 * onnxruntime's native library loads on the inference thread only: the main thread's tensors are
 * onnxruntime-common's (the same class onnxruntime-node exports), so a bundle's main thread never
 * waits for it, and the thread can be started early (`prestartInferenceThread`) to load it while
 * the main thread loads the HTTP side. A thread started early and told which model file and
 * settings it will most likely get (a bundle knows its model files, the environment the rest)
 * creates that session meanwhile too; the model the main thread then sends decides: the same file
 * with the same settings takes the session already made, anything else makes its own.
 */
import { resolve as resolvePath } from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-common';
import type * as OrtNode from 'onnxruntime-node';
import type { Feeds, Fetches } from '../tensor/types.ts';
import { deadlineExceeded } from './queue.ts';

/** The script a new inference thread runs: inference-worker.mjs from source, a bundle's inference.mjs. */
let workerScript: URL = new URL('./inference-worker.mjs', import.meta.url);

/** Bundles call this with the URL of their thread entry (inference.mjs, beside main.mjs). */
export function setInferenceWorkerScript(url: string | URL): void {
  workerScript = new URL(url);
}

/** A thread started before its model was known, loading onnxruntime meanwhile; the next start takes it. */
let early: { worker: Worker; exited: boolean } | undefined;

/** The session settings the runtime asks onnxruntime for. */
export interface SessionSettings {
  /** Let onnxruntime's pool threads spin while they wait for work (its default; off here). */
  spinning?: boolean;
  intraOpThreads?: number;
  interOpThreads?: number;
}

/**
 * onnxruntime's session options for the runtime's settings: every optimisation, its own log
 * quiet (failed runs are reported by the runtime), threads as set.
 *
 * @example sessionOptionsFor({ intraOpThreads: 2 }).intraOpNumThreads // 2
 */
export function sessionOptionsFor(settings: SessionSettings): ort.InferenceSession.SessionOptions {
  const options: ort.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', logSeverityLevel: 4 };
  if (!settings.spinning) {
    // onnxruntime's pool threads spin while waiting for work by default: on a small host that
    // burns the cores Node and nginx need between requests.
    options.extra = { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } };
  }
  if (settings.intraOpThreads) options.intraOpNumThreads = settings.intraOpThreads;
  if (settings.interOpThreads) options.interOpNumThreads = settings.interOpThreads;
  return options;
}

/** The model an early thread expects: the file and the options it will most likely be sent. */
export interface ModelGuess {
  path: string;
  options: ort.InferenceSession.SessionOptions;
}

/**
 * Starts an inference thread now, before the model is known: Node's thread start and onnxruntime's
 * native library then load while the caller goes on loading the rest, and with `guess` the
 * session for that file is created as well. The next `startInferenceThread` hands it its model.
 * It keeps no process alive while nobody took it.
 *
 * @example prestartInferenceThread(new URL('./inference.mjs', import.meta.url), { path: '/app/iris/model.onnx', options: sessionOptionsFor({}) });
 */
export function prestartInferenceThread(url: string | URL, guess?: ModelGuess): void {
  setInferenceWorkerScript(url);
  const worker = new Worker(workerScript, { workerData: { modelfnInferenceThread: true, guess } satisfies Partial<ThreadInit> });
  const started = { worker, exited: false };
  worker.once('exit', () => (started.exited = true));
  // A failure surfaces when a thread is started for the model (a new one, with its own error).
  worker.on('error', () => {});
  worker.unref();
  early = started;
}

/**
 * Ends a thread started early that was given no model, once onnxruntime's load and its guessed
 * session are done: a process exiting while that thread is inside onnxruntime's native code aborts
 * (`terminate called after throwing an instance of 'Napi::Error'`) instead of exiting with its own
 * code. A process that exits before serving (a bad setting or declaration) calls this first; it
 * waits at most `timeoutMs`.
 *
 * @example await endEarlyThread(); process.exit(1);
 */
export async function endEarlyThread(timeoutMs = 10_000): Promise<void> {
  const pending = early;
  early = undefined;
  if (!pending || pending.exited) return;
  const exited = new Promise<void>((done) => pending.worker.once('exit', () => done()));
  pending.worker.postMessage('abandon');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([exited, new Promise<void>((done) => (timer = setTimeout(done, timeoutMs)))]);
  clearTimeout(timer);
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
  /** Past this (ms since the epoch) nobody waits for the answer: the thread drops the job. */
  deadline: number;
}

type Reply =
  | { kind: 'ready'; inputs: ort.InferenceSession.ValueMetadata[]; outputs: ort.InferenceSession.ValueMetadata[]; early: boolean }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: WireTensor[]; ms: number }
  | { kind: 'error'; id: number; message: string }
  | { kind: 'expired'; id: number };

export interface ThreadInit {
  modelfnInferenceThread: true;
  /**
   * The model: its bytes, or its file's path, which onnxruntime reads on the thread (the bytes then
   * never cross, and a thread that guessed that file may already hold its session).
   */
  model: Uint8Array | string;
  options: ort.InferenceSession.SessionOptions;
  /** An early thread's guess of its model, created while the main thread loads. */
  guess?: ModelGuess;
}

/**
 * A tensor ready to cross threads. A view into a larger buffer (a request body, Node's shared
 * pool) is copied out first: moving that buffer would take its other contents along.
 */
function toWire(name: string, tensor: ort.Tensor): WireTensor {
  const data = tensor.data;
  if (Array.isArray(data)) return { name, type: tensor.type, dims: tensor.dims, data };
  // FP16 crosses as its bits: where Node has Float16Array (24 and later) onnxruntime-common holds
  // float16 data in one, which the inference thread, holding the bits, does not take (see below).
  const typed = data as unknown as Float32Array;
  const view = tensor.type === 'float16' && !(data instanceof Uint16Array) ? new Uint16Array(typed.buffer, typed.byteOffset, typed.length) as unknown as Float32Array : typed;
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

/**
 * onnxruntime's session for a model given as its bytes or its file's path (which onnxruntime then
 * reads itself). Rejects with onnxruntime's reason; from a path, without the "Load model from
 * <path> failed:" onnxruntime puts before it (the caller names the file).
 *
 * @example const session = await createSession((await import('onnxruntime-node')).InferenceSession, 'model.onnx', {});
 */
export async function createSession(InferenceSession: typeof OrtNode.InferenceSession, model: Uint8Array | string, options: ort.InferenceSession.SessionOptions): Promise<OrtNode.InferenceSession> {
  try {
    return await (typeof model === 'string' ? InferenceSession.create(model, options) : InferenceSession.create(model, options));
  } catch (err) {
    const message = String((err as Error)?.message ?? err);
    throw new Error(typeof model === 'string' ? message.replace(`Load model from ${model} failed:`, '') : message);
  }
}

/** True when this thread was started as an inference thread. */
export function isInferenceThread(): boolean {
  return !isMainThread && (workerData as Partial<ThreadInit> | undefined)?.modelfnInferenceThread === true;
}

/** The inference thread's side: load the session, then run jobs as they come. */
export async function serveInferenceThread(): Promise<void> {
  const port = parentPort!;
  // onnxruntime-node's native binding cannot read a Float16Array (Node 24 and later have one, and
  // onnxruntime-common would put float16 data in it: "not enough space: expected 12, got 0"). This
  // thread is the runtime's own: without the global, float16 tensors keep their bits in a Uint16Array.
  Reflect.deleteProperty(globalThis, 'Float16Array');
  // onnxruntime loads while a thread started early waits for its model (sent as the first message).
  const loading = import('onnxruntime-node');
  loading.catch(() => {});
  // A thread started early with a guess creates that session while it waits.
  const guess = (workerData as Partial<ThreadInit>).guess;
  const guessed = guess ? loading.then(({ InferenceSession }) => InferenceSession.create(guess.path, guess.options)) : undefined;
  guessed?.catch(() => {});
  const first = (workerData as ThreadInit).model ? workerData as ThreadInit : await new Promise<ThreadInit | 'abandon'>((done) => port.once('message', done));
  if (first === 'abandon') {
    // No model is coming (the process is about to exit): end once onnxruntime's native code is
    // done with the load and the guessed session, never inside it.
    await loading.catch(() => {});
    await guessed?.then((s) => s.release(), () => {});
    process.exit(0);
  }
  const init = first;
  // Failing to load onnxruntime ends the thread (an error event): not the model's fault.
  const { InferenceSession } = await loading;
  const { model } = init;
  const early = guessed !== undefined && typeof model === 'string' && resolvePath(model) === resolvePath(guess!.path) && JSON.stringify(init.options) === JSON.stringify(guess!.options);
  // A wrong guess's session is freed; a right one that failed is made again from the model sent, for onnxruntime's own error.
  const freed = guessed && !early ? guessed.then((s) => s.release(), () => {}) : undefined;
  const fromGuess = early ? await guessed.catch(() => undefined) : undefined;
  let session: ort.InferenceSession;
  try {
    session = fromGuess ?? await createSession(InferenceSession, model, init.options);
  } catch (err) {
    // The process may exit on this answer: not while the wrong guess is still inside onnxruntime.
    await freed;
    port.postMessage({ kind: 'failed', message: (err as Error).message } satisfies Reply);
    return;
  }
  port.postMessage({ kind: 'ready', inputs: [...session.inputMetadata], outputs: [...session.outputMetadata], early: fromGuess !== undefined } satisfies Reply);
  // Runs under way: ending the thread on purpose waits for them (stopping inside onnxruntime's
  // native code would abort the whole process); jobs that arrive meanwhile are left to fail.
  let running = 0;
  let exiting = false;
  port.on('message', async (job: Job | 'release' | 'exit') => {
    if (job === 'release') {
      await session.release();
      port.close();
      return;
    }
    // Ending the thread on purpose, as a crash would end it (tests, diagnostics).
    if (job === 'exit') {
      exiting = true;
      if (running === 0) process.exit(1);
      return;
    }
    if (exiting) return;
    // The last check before onnxruntime: the job waited in the message queue past its deadline.
    if (job.deadline <= Date.now()) {
      port.postMessage({ kind: 'expired', id: job.id } satisfies Reply);
      return;
    }
    running++;
    try {
      const feeds: Feeds = {};
      for (const t of job.feeds) feeds[t.name] = fromWire(t);
      const started = performance.now();
      const result = job.outputs ? await session.run(feeds, job.outputs as string[]) : await session.run(feeds);
      const ms = performance.now() - started;
      const outputs = Object.entries(result).map(([name, tensor]) => toWire(name, tensor));
      port.postMessage({ kind: 'result', id: job.id, outputs, ms } satisfies Reply, transferables(outputs));
    } catch (err) {
      port.postMessage({ kind: 'error', id: job.id, message: String((err as Error)?.message ?? err) } satisfies Reply);
    } finally {
      running--;
      if (exiting && running === 0) process.exit(1);
    }
  });
}

/** onnxruntime refused the model (as opposed to the thread failing to start). */
export class SessionCreateError extends Error {
  override name = 'SessionCreateError';
}

/** onnxruntime failed a run on the thread; the message is onnxruntime's. */
export class ThreadRunError extends Error {
  override name = 'ThreadRunError';
}

/** The inference thread ended while it should have been serving (a crash, an out-of-memory, ended). */
export class InferenceThreadExit extends Error {
  override name = 'InferenceThreadExit';
}

export interface ThreadSession {
  inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
  /**
   * Runs the session on the thread. With `transfer`, the feeds' buffers move to the thread
   * (the caller's tensors are left empty); without it they are copied, and stay the caller's.
   */
  run(feeds: Feeds, outputNames?: readonly string[], transfer?: boolean, deadline?: number): Promise<Fetches>;
  /** The session was the one an early thread created from its guess while the main thread loaded. */
  early: boolean;
  /** How long the last run took on the thread itself, ms (no hop, no wait for the main thread's loop). */
  readonly lastRunMs: number;
  /** Frees the session and ends the thread, as planned. */
  release(): Promise<void>;
  /**
   * Ends the thread as a crash would (exit code 1), once the run it is executing, if any, is done:
   * runs still waiting fail, `onExit` is told. (Stopping a thread inside onnxruntime's native
   * code would abort the whole process.)
   */
  terminate(): Promise<void>;
}

export interface ThreadHooks {
  /** Called once if the thread ends other than by `release`, with why. */
  onExit?(reason: string): void;
}

/**
 * Starts an inference thread for a model, given as its bytes or as its file's path (read on the
 * thread; the caller checks first that the file is there); rejects with onnxruntime's message if
 * it cannot load. A thread started early that guessed that file and these options hands over the
 * session it made meanwhile.
 *
 * @example const session = await startInferenceThread('functions/iris/model.onnx', { graphOptimizationLevel: 'all' });
 */
export function startInferenceThread(model: Uint8Array | string, options: ort.InferenceSession.SessionOptions, hooks: ThreadHooks = {}): Promise<ThreadSession> {
  const init = { modelfnInferenceThread: true, model, options } satisfies ThreadInit;
  const taken = early && !early.exited ? early.worker : undefined;
  early = undefined;
  const worker = taken ?? new Worker(workerScript, { workerData: init });
  if (taken) {
    taken.ref();
    taken.removeAllListeners('error');
    taken.postMessage(init);
  }
  const pending = new Map<number, { resolve(f: Fetches): void; reject(e: unknown): void }>();
  let next = 0;
  let dead: Error | undefined;
  let ready = false;
  let releasing = false;
  let lastRunMs = NaN;
  const failAll = (reason: string) => {
    if (dead) return;
    dead = new InferenceThreadExit(`the inference thread ${reason}`);
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    if (ready && !releasing) hooks.onExit?.(reason);
  };
  return new Promise((resolve, reject) => {
    worker.once('error', (err: Error) => {
      reject(err);
      failAll(`failed: ${String(err?.message ?? err).split('\n')[0]}`);
    });
    worker.once('exit', (code) => {
      reject(new Error(`the inference thread exited (code ${code}) before it was ready`));
      failAll(`exited (code ${code})`);
    });
    worker.on('message', (reply: Reply) => {
      switch (reply.kind) {
        case 'ready':
          ready = true;
          resolve({
            get lastRunMs() {
              return lastRunMs;
            },
            inputMetadata: reply.inputs,
            outputMetadata: reply.outputs,
            early: reply.early,
            run(feeds, outputNames, transfer = false, deadline = Infinity) {
              if (dead) return Promise.reject(dead);
              const id = next++;
              const wire = Object.entries(feeds).map(([name, t]) => toWire(name, t));
              return new Promise<Fetches>((done, fail) => {
                pending.set(id, { resolve: done, reject: fail });
                // Moved when the caller gives the tensors up; copied (structured clone) otherwise.
                                try {
                  worker.postMessage({ id, feeds: wire, outputs: outputNames, deadline } satisfies Job, transfer ? transferables(wire) : []);
                } catch (err) {
                  pending.delete(id);
                  fail(err);
                }
              });
            },
            async release() {
              releasing = true;
              if (dead) return;
              worker.postMessage('release');
              await new Promise((done) => worker.once('exit', done));
            },
            async terminate() {
              if (dead) return;
              worker.postMessage('exit');
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
          lastRunMs = reply.ms;
          const fetches: Fetches = {};
          for (const t of reply.outputs) fetches[t.name] = fromWire(t);
          job?.resolve(fetches);
          break;
        }
        case 'error': {
          const job = pending.get(reply.id);
          pending.delete(reply.id);
          job?.reject(new ThreadRunError(reply.message));
          break;
        }
        case 'expired': {
          const job = pending.get(reply.id);
          pending.delete(reply.id);
          job?.reject(deadlineExceeded());
          break;
        }
      }
    });
  });
}
