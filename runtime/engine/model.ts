/**
 * Loading an ONNX model with onnxruntime and describing its inputs and outputs; running it on its
 * inference thread, restarting that thread if it dies, or (a small model) on the main thread.
 */
import { open, stat } from 'node:fs/promises';
import * as ort from 'onnxruntime-common';
import type * as OrtNode from 'onnxruntime-node';
import { ModelQueue, canBatch, deadlineExceeded, type Deadline, type QueueObserver } from './queue.ts';
import { datatypeOfOrtType } from '../tensor/datatypes.ts';
import type { Feeds, Fetches, TensorSpec } from '../tensor/types.ts';
import { ModelfnError } from '../core/errors.ts';
import { CALIBRATION_ROWS, MAIN_THREAD_BUDGET_MS, MAIN_THREAD_RUN_LIMIT_MS, MAIN_THREAD_RUN_MAX_MS, calibrationFeeds, elementsOf, estimateMs, fitCost, hasDynamicDimension, MAX_MODEL_BYTES, MAX_NODES_READ, THREAD_PROBE_MAX_MS, sizeBoundOperators, type RunCost } from './placement.ts';
import { readOnnxOperators } from './onnx-file.ts';
import { InferenceThreadExit, SessionCreateError, ThreadRunError, createSession, sessionOptionsFor, startInferenceThread, type ThreadSession } from './inference-thread.ts';

/** A loaded model: what functions and the protocol routes run inference with. */
export interface Model {
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** Milliseconds spent loading the model. */
  readonly loadMs: number;
  /** The session was created ahead, on a thread started early that guessed this model (bundles). */
  readonly loadedEarly: boolean;
  /** Whether requests are joined into batches (asked for, and the model has a batch dimension). */
  readonly batching: boolean;
  /**
   * Runs inference. `outputNames` limits the outputs computed (all by default). With
   * `{ transfer: true }` the feeds' buffers move to the inference thread instead of being copied:
   * only for tensors nothing else will read again (the runtime's own decoded inputs). With a
   * `signal` (a custom route: `ctx.signal(c)`), the run is dropped when the request's client
   * leaves or its time runs out. Fails with a ModelfnError: `overloaded` when the model's queue
   * is full, `deadline_exceeded`/`cancelled` when the work was dropped, `unavailable`,
   * `invalid_input` (onnxruntime refused the input) or `model_failure`.
   *
   * @example const { probabilities } = await model.run({ input: new ort.Tensor('float32', data, [1, 4]) });
   */
  run(feeds: Feeds, outputNames?: readonly string[], options?: RunOptions): Promise<Fetches>;
  /** Throws `overloaded` (429) when the model's queue is full: ask before reading a request's body. */
  checkAdmission(): void;
  /** Frees the session (and its thread). */
  release(): Promise<void>;
  /**
   * Where the model's runs take place now: on its inference thread, or on the main thread (a
   * model small enough that the hop to a thread would cost more than the run, with `thread: 'auto'`;
   * its larger requests still go to a thread).
   */
  readonly placement: Placement;
  /** Settles once the model has chosen its placement (at once unless `thread: 'auto'`). */
  readonly placed: Promise<Placement>;
  /** The inference thread, when inference runs on one (or may, with `thread: 'auto'`). */
  readonly thread?: {
    /** Ends the thread abruptly, as a crash would (the model reports it and starts a new one). */
    end(): Promise<void>;
    /** Whether a thread is there now (with the model on the main thread, only while large requests need one). */
    readonly running: boolean;
  };
}

/** Where a model's runs take place. */
export type Placement = 'thread' | 'main';

export interface RunOptions extends Deadline {
  /** The caller gives the feeds up: their buffers may move to the inference thread. */
  transfer?: boolean;
}

/** A model file that is missing, unreadable, or not a model onnxruntime can serve. */
export class ModelLoadError extends Error {
  override name = 'ModelLoadError';
  /** Set when the model loads elsewhere: only a locale is missing on this machine. */
  missingLocale = false;
}

export interface LoadModelOptions {
  intraOpThreads?: number;
  interOpThreads?: number;
  /** Let onnxruntime's threads spin while waiting for work (lower latency, busier cores). */
  spinning?: boolean;
  /**
   * Run inference on a thread of its own, keeping the event loop free (default true). With
   * 'auto', the model starts on its thread; then, when a run of it on the main thread costs less
   * than the hop to the thread, requests it can run quickly move to the main thread, and the
   * thread is ended until a larger request needs it (see choosePlacement).
   */
  thread?: boolean | 'auto';
  /** With `thread: 'auto'`: how long after the load the placement is chosen, ms (default 1000). */
  placementDelayMs?: number;
  /** With `thread: 'auto'`: how long a thread started for a large request outlives its last run, ms (default 30 s). */
  threadIdleMs?: number;
  /** With `thread: 'auto'`: a model moves to the main thread only when a run of one row there takes at most this, ms (default MAIN_THREAD_RUN_MAX_MS). */
  mainThreadRunMaxMs?: number;
  /** With `thread: 'auto'`: a run on the main thread longer than this sends the model back to its thread, ms (default MAIN_THREAD_RUN_LIMIT_MS). */
  mainThreadRunLimitMs?: number;
  /** Called with the seconds each run took. */
  observeInference?: (seconds: number) => void;
  /** Dynamic batching, when enabled and the model has a batch dimension. */
  batching?: { enabled: boolean; maxBatchSize: number; maxDelayMs: number };
  /** Rows that may wait for the model, batching or not (default 1024). */
  maxQueue?: number;
  /** Longest expected wait a request is admitted to, ms (default: no bound but maxQueue). */
  maxQueueMs?: number;
  /** Runs under way at once (default 1: onnxruntime's own threads share the cores). */
  maxInFlight?: number;
  queueObserver?: QueueObserver;
  /** The inference thread died: the model cannot run until it is back (`reason` says why). */
  onUnavailable?(reason: string): void;
  /** A new inference thread serves again. */
  onAvailable?(): void;
  /** With `thread: 'auto'`: the model's runs moved to the main thread, or back to the thread, and why. */
  onPlacement?(placement: Placement, why: string): void;
}

/**
 * onnxruntime's own checks of a run's inputs (names, types, ranks, dimensions): the input's fault.
 * Anything else failing inside a run is the model's (a kernel that fails on values that passed
 * every check): not the client's to fix by changing the request's form.
 */
const ORT_INPUT_CHECK = /invalid dimensions|invalid rank|unexpected input data type|input name: .* is not|missing input|invalid input name|input .* (?:was|is) not found|tensor type .* expected/i;

/**
 * What a failed run means, in the engine's own words. A kernel that fails on an input holding a
 * zero-length dimension failed on a degenerate input (most graphs cannot pad, pool or reduce
 * nothing): that is the input's fault; any other kernel failure is the model's.
 */
export function runFailure(err: unknown, feeds?: Feeds): ModelfnError {
  if (err instanceof ModelfnError) return err;
  const message = String((err as Error)?.message ?? err).replace(/\s+/g, ' ').trim().slice(0, 300);
  // Not the request's fault: the thread died under it; the restart is under way.
  if (err instanceof InferenceThreadExit) {
    return new ModelfnError('unavailable', 'the model stopped while running this request; it is being restarted, retry shortly', { retryAfterSeconds: 1, detail: message });
  }
  if (err instanceof ThreadRunError) {
    if (ORT_INPUT_CHECK.test(message)) return new ModelfnError('invalid_input', `the model refused this input: ${message}`);
    const empty = feeds && Object.entries(feeds).find(([, t]) => t.dims.includes(0));
    if (empty) return new ModelfnError('invalid_input', `the model cannot run on input '${empty[0]}' with shape [${empty[1].dims.join(',')}] (no elements)`, { detail: message });
    return new ModelfnError('model_failure', 'the model failed while running on this input', { detail: message });
  }
  // The thread could not take the message, memory could not be had, ...: the server's failure.
  return new ModelfnError('internal', 'the model could not be run', { detail: message, cause: err });
}

/** Delay before restarting a dead inference thread, after `attempt` failed restarts. */
const restartDelayMs = (attempt: number) => Math.min(5000, 100 * 2 ** attempt);

function specOf(meta: ort.InferenceSession.ValueMetadata, path: string, role: string): TensorSpec {
  if (!meta.isTensor) throw new ModelLoadError(`${path}: ${role} '${meta.name}' is not a tensor (sequences and maps are not supported)`);
  const info = datatypeOfOrtType(meta.type);
  if (!info) throw new ModelLoadError(`${path}: ${role} '${meta.name}' has type ${meta.type}, which the protocol cannot carry`);
  const shape = meta.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
  return { name: meta.name, datatype: info.datatype, shape, info };
}

/**
 * What to install when onnxruntime could not build a locale the model asks for (its
 * StringNormalizer uses en_US.UTF-8), or undefined for other failures.
 */
export function missingLocale(reason: string): string | undefined {
  const name = /Failed to construct locale with name:\s*([A-Za-z0-9_.@-]+)/.exec(reason)?.[1];
  if (!name) return undefined;
  const [language, charset = 'UTF-8'] = name.split('.');
  return `the model needs the ${name} locale, which this machine lacks; install it (Debian/Ubuntu: apt-get install locales && localedef -i ${language} -f ${charset} ${name}) and start again`;
}

/** Throws the error reading `path` would throw (not there, not a file, not readable), without reading it. */
async function checkReadable(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    if (!(await handle.stat()).isFile()) throw Object.assign(new Error(`${path} is not a file`), { code: 'EISDIR' });
  } finally {
    await handle.close();
  }
}

/**
 * Loads a model file; throws ModelLoadError with one line naming the file and the problem.
 *
 * @example const model = await loadModel('functions/iris/model.onnx');
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  const started = performance.now();
  const useThread = (options.thread ?? true) !== false;
  const auto = options.thread === 'auto';
  // onnxruntime reads the file itself (on the inference thread, where there is one): the runtime
  // only checks that it can be read, and never holds the model's bytes.
  try {
    await checkReadable(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelLoadError(code === 'ENOENT' ? `${path}: model file not found` : `${path}: cannot read the model (${code ?? String(err)})`);
  }
  type Session = Pick<ThreadSession, 'inputMetadata' | 'outputMetadata' | 'release' | 'run'> & Partial<Pick<ThreadSession, 'terminate'>>;
  // The inference thread's session (or, without a thread, the main thread's). With `thread: 'auto'`
  // and the model moved to the main thread, it is there only while a large request needs it.
  let session: Session | undefined;
  // Set while the inference thread is dead and being restarted: why the model cannot run.
  let unavailable: string | undefined;
  let released = false;
  // With the model moved to the main thread (`thread: 'auto'`): its session there, and what its runs cost.
  let main: { session: OrtNode.InferenceSession; cost: RunCost } | undefined;
  // Where runs take place follows from that: no thread at all, or a session on the main thread.
  const placement = (): Placement => (!useThread || main ? 'main' : 'thread');
  // Failed runs are reported by the runtime (runFailure); onnxruntime's own error lines would only duplicate them.
  const sessionOptions = sessionOptionsFor(options);
  // A restart reads the file again (on its new thread).
  const startThread = (): Promise<ThreadSession> => startInferenceThread(path, sessionOptions, { onExit: (reason) => onThreadExit(reason) });
  const onThreadExit = (reason: string) => {
    // On the main thread, the model serves on: the thread was only for large requests, and the
    // next one starts another (the runs it held failed as unavailable).
    if (main) session = undefined;
    else void restart(reason);
  };
  // A dead thread: report the model unavailable at once, then start a new thread (with backoff
  // while starting fails); the model serves again once one is ready.
  const restart = async (reason: string) => {
    for (let attempt = 0; !released; attempt++) {
      unavailable = attempt === 0 ? `its inference thread ${reason}; restarting it` : `its inference thread ${reason} and could not be restarted yet (attempt ${attempt}); retrying`;
      options.onUnavailable?.(unavailable);
      if (attempt > 0) await new Promise((done) => setTimeout(done, restartDelayMs(attempt - 1)));
      try {
        const next = await startThread();
        if (released) {
          await next.release();
          return;
        }
        session = next;
        unavailable = undefined;
        options.onAvailable?.();
        return;
      } catch {
        // counted as an attempt; the loop says so and retries
      }
    }
  };
  try {
    if (useThread) {
      session = await startThread();
    } else {
      // Only here does the main thread load onnxruntime's native library.
      const { InferenceSession } = await import('onnxruntime-node');
      const direct = await createSession(InferenceSession, path, sessionOptions);
      session = {
        inputMetadata: direct.inputMetadata,
        outputMetadata: direct.outputMetadata,
        release: () => direct.release(),
        run: (feeds, names, _transfer, deadline) => runDirect(direct, feeds, names, deadline).then((r) => r.result),
      };
    }
  } catch (err) {
    const reason = String((err as Error)?.message ?? err).split('\n')[0];
    const locale = missingLocale(reason);
    if (locale) throw Object.assign(new ModelLoadError(`${path}: ${locale}`), { missingLocale: true });
    const threadFailed = useThread && !(err instanceof SessionCreateError);
    throw new ModelLoadError(threadFailed ? `${path}: the inference thread failed to start: ${reason}` : `${path}: not a valid ONNX model (onnxruntime: ${reason})`);
  }
  const inputs = session.inputMetadata.map((m) => specOf(m, path, 'input'));
  const outputs = session.outputMetadata.map((m) => specOf(m, path, 'output'));
  const loadMs = performance.now() - started;
  const loadedEarly = 'early' in session && session.early === true;
  const observe = options.observeInference;

  // A thread started for large requests, while it starts; its runs under way; when it is ended.
  let starting: Promise<Session> | undefined;
  let threadRuns = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const threadIdleMs = options.threadIdleMs ?? 30_000;
  const endIdleThread = () => {
    idleTimer = undefined;
    const idle = session;
    if (!main || threadRuns > 0 || !idle) return;
    session = undefined;
    void idle.release();
  };
  const threadSession = async (): Promise<Session> => {
    if (session) return session;
    // Without a thread, the main thread's session is the only one, and it is gone: released.
    if (!useThread) throw new ModelfnError('unavailable', 'the model was released', { retryAfterSeconds: 1 });
    starting ??= startThread().finally(() => (starting = undefined));
    try {
      const started = await starting;
      if (released || (session && session !== started)) {
        // Released while this thread started, or another is there: nobody else will end this one.
        void started.release();
        if (released) throw new Error('the model was released');
      }
      session ??= started;
      return session;
    } catch (err) {
      const reason = String((err as Error)?.message ?? err).split('\n')[0];
      // Back on its thread for good, the model cannot serve without one: not ready, and started
      // again with backoff, as after a crash. On the main thread only this large request fails.
      if (!main && !released && !unavailable) void restart(`could not be started: ${reason}`);
      throw new ModelfnError('unavailable', 'the model could not start an inference thread for this request; retry shortly', { retryAfterSeconds: 1, detail: reason, cause: err });
    }
  };
  const onThread = async (feeds: Feeds, outputNames: readonly string[] | undefined, transfer: boolean, deadline: number): Promise<Fetches> => {
    if (unavailable) throw new ModelfnError('unavailable', `the model is unavailable: ${unavailable}`, { retryAfterSeconds: 1 });
    // A thread that is there takes the job at once (in the caller's turn), as it always did.
    const thread = session ?? await threadSession();
    threadRuns++;
    // Timed from here: a thread's start is not the model's run.
    const t0 = performance.now();
    try {
      const result = await thread.run(feeds, outputNames, transfer, deadline);
      observe?.((performance.now() - t0) / 1000);
      return result;
    } finally {
      threadRuns--;
      if (main && threadRuns === 0) {
        clearTimeout(idleTimer);
        idleTimer = setTimeout(endIdleThread, threadIdleMs).unref();
      }
    }
  };
  const runSession = async (feeds: Feeds, outputNames: readonly string[] | undefined, transfer: boolean, deadline: number): Promise<Fetches> => {
    // Requests still queued when the model was released (a reload, a shutdown past its drain)
    // start nothing new.
    if (released) throw new ModelfnError('unavailable', 'the model was released (the function is reloading or stopping); retry shortly', { retryAfterSeconds: 1 });
    try {
      if (main && estimateMs(main.cost, elementsOf(feeds)) <= MAIN_THREAD_BUDGET_MS) {
        const t0 = performance.now();
        const run = await runDirect(main.session, feeds, outputNames, deadline);
        observe?.((performance.now() - t0) / 1000);
        // A run far slower than its estimate (a model whose cost its input's size does not tell):
        // the model goes back to its thread, where no run can hold up the server.
        if (run.ms > (options.mainThreadRunLimitMs ?? MAIN_THREAD_RUN_LIMIT_MS)) leaveMainThread(`a run took ${run.ms.toFixed(1)} ms`);
        return run.result;
      }
      return await onThread(feeds, outputNames, transfer, deadline);
    } catch (err) {
      throw runFailure(err, feeds);
    }
  };
  const leaveMainThread = (why: string) => {
    if (!main) return;
    leftForGood = true;
    const left = main.session;
    main = undefined;
    clearTimeout(idleTimer);
    options.onPlacement?.('thread', why);
    // Runs under way on it finish first: onnxruntime frees it once they are done.
    setImmediate(() => void left.release());
  };
  // With `thread: 'auto'`: a small graph whose operators' work follows the size of their inputs is
  // timed on the main thread (one row, then more when it has a dynamic dimension), and moves there
  // when a run costs less than the hop to its thread.
  const placementRetries = [10_000, 60_000];
  const runMaxMs = options.mainThreadRunMaxMs ?? MAIN_THREAD_RUN_MAX_MS;
  // Sent back to its thread by a slow run: it stays there.
  let leftForGood = false;
  const choosePlacement = async (): Promise<Placement> => {
    if (released || !auto || main || leftForGood) return placement();
    // Only a small file with a small graph is looked at; making its session on the main thread
    // then blocks it for a few ms.
    if (((await stat(path).catch(() => undefined))?.size ?? Infinity) > MAX_MODEL_BYTES) return placement();
    const operators = readOnnxOperators(path, MAX_NODES_READ);
    if (!operators || !sizeBoundOperators(operators)) return placement();
    const small = calibrationFeeds(ort.Tensor, inputs, outputs, 1);
    if (!small || released || !session) return placement();
    // A run of one row, on the thread first (timed there, so a busy main thread does not count):
    // a model that takes long there is never run here.
    const thread = session as Partial<ThreadSession>;
    try {
      await session.run(small, undefined, true, Infinity);
    } catch {
      return placement();
    }
    if (!(thread.lastRunMs! <= THREAD_PROBE_MAX_MS)) return placement();
    let direct: OrtNode.InferenceSession | undefined;
    try {
      const { InferenceSession } = await import('onnxruntime-node');
      // One thread: a run this small gains nothing from onnxruntime's pool, and waking its threads
      // on a busy host costs more than the run (and makes it slower the busier the host is).
      direct = await createSession(InferenceSession, path, { ...sessionOptions, intraOpNumThreads: 1, interOpNumThreads: 1 });
      // The best of 25 runs, each in a turn of the event loop of its own: on a host busy with
      // other threads, some of them run without being interrupted.
      const time = async (feeds: Feeds) => {
        let best = Infinity;
        for (let i = 0; i < 25; i++) {
          best = Math.min(best, (await runDirect(direct!, feeds, undefined, Infinity)).ms);
          await new Promise((done) => setImmediate(done));
        }
        return { elements: elementsOf(feeds), ms: best };
      };
      const one = await time(calibrationFeeds(ort.Tensor, inputs, outputs, 1)!);
      const many = one.ms <= runMaxMs && hasDynamicDimension(inputs) ? await time(calibrationFeeds(ort.Tensor, inputs, outputs, CALIBRATION_ROWS)!) : undefined;
      if (released || one.ms > runMaxMs || unavailable) {
        await direct.release();
        // Timed on a busy host, a small model can look slow: it is timed again later, twice.
        if (!released && !unavailable && one.ms <= runMaxMs * 10 && placementRetries.length) {
          setTimeout(() => void choosePlacement().catch(() => {}), placementRetries.shift()).unref();
        }
        return placement();
      }
      main = { session: direct, cost: fitCost(one, many) };
    } catch {
      // A model that cannot run on zeros (or whose session cannot be made twice) stays on its thread.
      await direct?.release().catch(() => {});
      return placement();
    }
    options.onPlacement?.('main', `a run of one row takes ${main.cost.fixedMs.toFixed(3)} ms`);
    // The thread ends once no run is left on it; a large request starts another.
    clearTimeout(idleTimer);
    idleTimer = setTimeout(endIdleThread, 0).unref();
    return placement();
  };
  const outputNames = outputs.map((o) => o.name);
  const batching = (options.batching?.enabled ?? false) && canBatch(inputs, outputs);
  const queue = new ModelQueue(runSession, outputNames, {
    batching,
    maxBatchSize: options.batching?.maxBatchSize ?? 32,
    maxDelayMs: options.batching?.maxDelayMs ?? 2,
    maxQueue: options.maxQueue ?? 1024,
    maxQueueMs: options.maxQueueMs,
    maxInFlight: options.maxInFlight,
  }, options.queueObserver);
  const placed = auto
    ? new Promise<void>((done) => setTimeout(done, options.placementDelayMs ?? 1000).unref()).then(choosePlacement)
    : Promise.resolve(placement());
  placed.catch(() => {});
  return {
    release: async () => {
      released = true;
      clearTimeout(idleTimer);
      const left = main?.session;
      main = undefined;
      // A run on the main thread already handed to onnxruntime (its setImmediate queued) finishes first.
      const freed = left ? new Promise<void>((done) => setImmediate(() => void left.release().then(done, done))) : undefined;
      await Promise.all([session?.release(), freed]);
    },
    inputs,
    outputs,
    loadMs,
    loadedEarly,
    batching,
    get placement() {
      return placement();
    },
    placed,
    run: (feeds, names, runOptions) => queue.run(feeds, names, runOptions?.transfer, runOptions),
    checkAdmission: () => queue.checkAdmission(),
    ...(useThread ? { thread: { end: async () => session?.terminate?.(), get running() { return session !== undefined; } } } : {}),
  };
}

/**
 * One run on the main thread, and how long onnxruntime took over it (not counting the turn of
 * the event loop its binding waits for before running: the run starts in a setImmediate queued
 * after the one that marks its start).
 */
async function runDirect(session: OrtNode.InferenceSession, feeds: Feeds, outputNames: readonly string[] | undefined, deadline = Infinity): Promise<{ result: Fetches; ms: number }> {
  if (deadline <= Date.now()) throw deadlineExceeded();
  let begun = performance.now();
  setImmediate(() => (begun = performance.now()));
  try {
    const result = await (outputNames ? session.run(feeds, outputNames as string[]) : session.run(feeds));
    return { result, ms: performance.now() - begun };
  } catch (err) {
    throw new ThreadRunError(String((err as Error)?.message ?? err));
  }
}
