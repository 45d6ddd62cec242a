/**
 * Admission and dynamic batching: every request for a model passes through one bounded queue,
 * whether or not the model batches.
 *
 * Admission. The queue holds at most `maxQueue` rows (a request counts its rows; a model that
 * cannot batch counts one per request), and at most `maxQueueMs` of work at the pace of recent
 * runs (a couple of runs may always wait). A request that would go beyond either is refused at
 * once with `overloaded` (HTTP 429 with Retry-After): a short queue and a quick refusal serve
 * clients better than a long wait (Knative's queue-proxy breaker, Triton's `max_queue_size`).
 * The bound in time is what keeps goodput up when clients give up: a queue holding more work
 * than they wait for spends the model on answers nobody reads, and reading and decoding the
 * bodies of requests that will be abandoned takes the CPU the model needs.
 *
 * Order. First come, first served, until the model is overloaded (the oldest request has waited
 * over NEWEST_FIRST_AFTER_MS): then the newest requests go first (see dispatch).
 *
 * Deadlines. A request carries its deadline and an abort signal (its client left, or its time
 * ran out). A request that the queued work ahead of it would keep past its deadline is refused
 * at once (overloaded), like one beyond maxQueue. An aborted request leaves the queue at once;
 * one whose deadline passed is dropped when it is taken from the queue; the inference thread checks the deadline once more before the
 * run. Work nobody will read never reaches onnxruntime.
 *
 * Batching (a model with a batch dimension, batching on). A lone request (it finds the model idle
 * and nobody queued) runs at once. A request that finds others there waits for companions: its
 * group runs as soon as it fills `maxBatchSize` rows, or once its oldest request has waited
 * `maxDelayMs`, whichever comes first (and a run slot is free). A request of `maxBatchSize` rows
 * or more runs on its own, in its turn.
 */
import * as ort from 'onnxruntime-common';
import type { NumericArray } from '../tensor/datatypes.ts';
import { ModelfnError } from '../core/errors.ts';
import type { Feeds, Fetches, TensorSpec } from '../tensor/types.ts';

/** The oldest request waited this long: the model is overloaded, the newest requests go first. */
export const NEWEST_FIRST_AFTER_MS = 100;

export interface QueueOptions {
  /** Join requests along the batch dimension (the model has one, and batching is on). */
  batching: boolean;
  maxBatchSize: number;
  maxDelayMs: number;
  /** Rows that may wait. */
  maxQueue: number;
  /** Longest expected wait a request is admitted to, ms (at the pace of recent runs); unbounded by default. */
  maxQueueMs?: number;
  /** Runs that may be under way at once. */
  maxInFlight?: number;
}

/**
 * What the queue needs of a request's cancellation: an AbortSignal, or the HTTP layer's cheaper
 * RequestLife (no AbortSignal unless a route asks for one).
 */
export interface Cancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** What the queue knows of one request's time. */
export interface Deadline {
  /** Fires when the request's client left or its time ran out; its reason is what the request fails with. */
  signal?: Cancellation;
  /** When the request's time runs out, in ms since the epoch (`Date.now()` scale); by default the signal's (setDeadline). */
  deadline?: number;
}

/** Deadlines of the signals the HTTP layer made: a route passes only its signal, the deadline comes with it. */
const deadlines = new WeakMap<Cancellation, number>();

/** Ties a deadline (ms since the epoch) to a request's signal. */
export function setDeadline(signal: Cancellation, at: number): void {
  deadlines.set(signal, at);
}

/**
 * One request's deadline and cancellation, as the HTTP layer gives them to the queue: what an
 * AbortController and its signal would do, without creating them for every request (creating an
 * AbortSignal was 2.5% of the main thread's time under load, issue 22). `signal` makes a real
 * AbortSignal on first use, for a route that asks for one (`ctx.signal(c)`); it fires with the
 * same reason.
 */
export class RequestLife implements Cancellation {
  #aborted = false;
  #reason: unknown;
  #listeners: (() => void)[] | undefined;
  #controller: AbortController | undefined;

  /** `deadline`: when the request's time runs out, in ms since the epoch. */
  constructor(readonly deadline: number) {}

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Ends the request's work: every listener runs once, the signal (if made) aborts with `reason`. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const listeners = this.#listeners;
    this.#listeners = undefined;
    if (listeners) for (const listener of listeners) listener();
    this.#controller?.abort(reason);
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.#aborted) (this.#listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.#listeners?.indexOf(listener) ?? -1;
    if (i >= 0) this.#listeners!.splice(i, 1);
  }

  /** A real AbortSignal for this request, made on first use; it carries the deadline too. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      deadlines.set(this.#controller.signal, this.deadline);
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }
}

export interface QueueObserver {
  batchRows?(rows: number): void;
  queuedSeconds?(seconds: number): void;
  queueDepth?(depth: number): void;
  /** A request was refused (overloaded) or dropped before running (deadline_exceeded, cancelled). */
  shed?(reason: 'overloaded' | 'deadline_exceeded' | 'cancelled'): void;
}

/** Runs one session call: `transfer` when the feeds may move to the inference thread; `deadline` for the thread's last check. */
export type Runner = (feeds: Feeds, outputNames: readonly string[], transfer: boolean, deadline: number) => Promise<Fetches>;

interface Pending {
  feeds: Feeds;
  rows: number;
  /** Runs on its own: the model cannot batch, or the request is a batch already. */
  solo: boolean;
  /** What a batch's requests must share; computed only when batching. */
  key: string;
  outputs: readonly string[];
  /** The caller gave the feeds up (see Model.run). */
  transfer: boolean;
  /** It found the model idle and nobody queued: it never waits for companions. */
  lone: boolean;
  arrived: number;
  deadline: number;
  signal?: Cancellation;
  onAbort?: () => void;
  /** Taken from the queue (run or dropped). */
  gone?: boolean;
  resolve(fetches: Fetches): void;
  reject(err: unknown): void;
}

/**
 * Whether a model can be batched: every input and output has a dynamic first dimension.
 *
 * @example canBatch(model.inputs, model.outputs) // true for [-1, 4] -> [-1, 3]
 */
export function canBatch(inputs: readonly TensorSpec[], outputs: readonly TensorSpec[]): boolean {
  return [...inputs, ...outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
}

/** The engine's answer to a request that cannot be admitted. */
export function overloaded(queuedRows: number): ModelfnError {
  return new ModelfnError('overloaded', `the model is overloaded: ${queuedRows} rows are already waiting; retry shortly`, { retryAfterSeconds: 1 });
}

/** The engine's answer to a request whose deadline passed before its model run. */
export const deadlineExceeded = (what = 'the request'): ModelfnError =>
  new ModelfnError('deadline_exceeded', `${what} ran out of time before the model ran it; its work was dropped`);

/** Why an aborted signal stopped the work: its reason when the engine set one, else `cancelled`. */
export function abortReason(signal: Cancellation): ModelfnError {
  const reason: unknown = signal.reason;
  return reason instanceof ModelfnError ? reason : new ModelfnError('cancelled', 'the client closed the connection; its work was dropped');
}

/** How a request dropped for `reason` is counted. */
const shedAs = (reason: ModelfnError) => (reason.kind === 'deadline_exceeded' ? 'deadline_exceeded' : 'cancelled');

function innerKey(feeds: Feeds, outputs: readonly string[]): string {
  let key = outputs.join(',');
  for (const name of Object.keys(feeds).sort()) key += `|${name}:${feeds[name].type}:${feeds[name].dims.slice(1).join('x')}`;
  return key;
}

function concat(tensors: ort.Tensor[]): ort.Tensor {
  const first = tensors[0];
  const rows = tensors.reduce((n, t) => n + t.dims[0], 0);
  const dims = [rows, ...first.dims.slice(1)];
  if (first.type === 'string') return new ort.Tensor('string', tensors.flatMap((t) => t.data as string[]), dims);
  const Ctor = (first.data as NumericArray).constructor as new (n: number) => NumericArray;
  const out = new Ctor(tensors.reduce((n, t) => n + t.size, 0));
  let offset = 0;
  for (const t of tensors) {
    (out as Float32Array).set(t.data as Float32Array, offset);
    offset += t.size;
  }
  return new ort.Tensor(first.type as 'float32', out as Float32Array, dims);
}

function slice(tensor: ort.Tensor, start: number, rows: number): ort.Tensor {
  const inner = tensor.dims.slice(1);
  const size = inner.reduce((a, b) => a * b, 1);
  const dims = [rows, ...inner];
  if (tensor.type === 'string') return new ort.Tensor('string', (tensor.data as string[]).slice(start * size, (start + rows) * size), dims);
  // A view, not a copy: each request's answer reads straight from the batch's output.
  const data = (tensor.data as Float32Array).subarray(start * size, (start + rows) * size);
  return new ort.Tensor(tensor.type as 'float32', data, dims);
}

export class ModelQueue {
  private queue: Pending[] = [];
  private queuedRows = 0;
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private readonly maxInFlight: number;
  /** Moving averages of a run's duration (ms) and rows, for the expected wait. */
  private runMs = 0;
  private rowsPerRun = 0;

  constructor(
    private readonly runner: Runner,
    private readonly allOutputs: readonly string[],
    private readonly options: QueueOptions,
    private readonly observer: QueueObserver = {},
  ) {
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  /** Requests waiting now. */
  get depth(): number {
    return this.queue.length;
  }

  /** Rows waiting now. */
  get rows(): number {
    return this.queuedRows;
  }

  /**
   * Throws `overloaded` when the queue is full: the HTTP layer asks before it reads and decodes a
   * body, so that a refusal under overload costs next to nothing.
   */
  checkAdmission(): void {
    const refusal = this.refusal(1, true);
    if (refusal) {
      this.observer.shed?.('overloaded');
      throw refusal;
    }
  }

  /**
   * Why a request of `rows` rows cannot join the queue now, if it cannot: the rows or the time
   * already queued. An empty queue admits any request (a single large one is bounded by the
   * body limit), and so do queues of fewer than two runs' work (slow models still queue a few).
   * `before` is the check made before the body is read, when the request's rows are unknown.
   */
  private refusal(rows: number, before = false): ModelfnError | undefined {
    if (this.queuedRows === 0) return undefined;
    if (before ? this.queuedRows >= this.options.maxQueue : this.queuedRows + rows > this.options.maxQueue) return overloaded(this.queuedRows);
    const bound = this.options.maxQueueMs;
    if (bound === undefined || !this.runMs) return undefined;
    const runsAhead = this.runsAhead();
    const wait = this.expectedWaitMs();
    if (runsAhead < 2 || wait <= bound) return undefined;
    return new ModelfnError('overloaded', `the model is overloaded: about ${Math.round(wait)} ms of work is queued; retry shortly`, { retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) });
  }

  /** Queues a request; resolves with its own outputs (its slice of a batch's). */
  run(feeds: Feeds, outputNames?: readonly string[], transfer = false, time: Deadline = {}): Promise<Fetches> {
    const { signal } = time;
    if (signal?.aborted) {
      const reason = abortReason(signal);
      this.observer.shed?.(shedAs(reason));
      return Promise.reject(reason);
    }
    const outputs = outputNames ?? this.allOutputs;
    let rows = 1;
    let solo = true;
    if (this.options.batching) {
      const names = Object.keys(feeds);
      const first = names.length ? feeds[names[0]].dims[0] : 0;
      // Requests that cannot be joined (empty, or inputs disagreeing on rows) run on their own.
      const joinable = first > 0 && names.every((n) => feeds[n].dims[0] === first);
      rows = Math.max(1, first);
      solo = !joinable || rows >= this.options.maxBatchSize;
    }
    const refusal = this.refusal(rows);
    if (refusal) {
      this.observer.shed?.('overloaded');
      return Promise.reject(refusal);
    }
    const deadline = time.deadline ?? (signal && (signal instanceof RequestLife ? signal.deadline : deadlines.get(signal))) ?? Infinity;
    if (deadline !== Infinity) {
      const now = Date.now();
      if (deadline <= now) {
        this.observer.shed?.('deadline_exceeded');
        return Promise.reject(deadlineExceeded());
      }
      // A request that cannot be run before its deadline is refused now, not when its time is up:
      // the client learns at once, and the work ahead of it is not slowed down by it.
      const wait = this.expectedWaitMs();
      if (now + wait > deadline) {
        this.observer.shed?.('overloaded');
        return Promise.reject(new ModelfnError('overloaded', `the model is overloaded: about ${Math.round(wait)} ms of work is queued, more than this request's time allows; retry shortly`, { retryAfterSeconds: Math.max(1, Math.ceil(wait / 1000)) }));
      }
    }
    return new Promise((resolve, reject) => {
      const lone = this.queue.length === 0 && this.inFlight === 0;
      const p: Pending = {
        feeds, rows, solo, key: solo ? '' : innerKey(feeds, outputs), outputs, transfer, lone,
        arrived: performance.now(), deadline, signal, resolve, reject,
      };
      if (signal) {
        p.onAbort = () => this.abort(p);
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.queue.push(p);
      this.queuedRows += rows;
      this.observer.queueDepth?.(this.queue.length);
      this.schedule();
    });
  }

  /** An aborted request leaves the queue at once (if it is still there). */
  private abort(p: Pending): void {
    const i = this.queue.indexOf(p);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.queuedRows -= p.rows;
    this.observer.queueDepth?.(this.queue.length);
    const reason = abortReason(p.signal!);
    this.observer.shed?.(shedAs(reason));
    p.reject(reason);
    // The head may have been the request that held a batch back.
    this.schedule();
  }

  private schedule(): void {
    while (this.queue.length && this.inFlight < this.maxInFlight) {
      const head = this.queue[0];
      const waited = performance.now() - head.arrived;
      const ready = head.solo || head.lone || this.queuedRows >= this.options.maxBatchSize || waited >= this.options.maxDelayMs;
      if (!ready) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.schedule();
          }, Math.max(0, this.options.maxDelayMs - waited));
        }
        return;
      }
      this.dispatch();
    }
  }

  /** Settles a request's bookkeeping as it leaves the queue. */
  private leave(p: Pending): void {
    this.queuedRows -= p.rows;
    if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
  }

  /**
   * Takes the oldest live request (the newest under overload) and, unless it runs alone, every
   * queued request that can join it, up to maxBatchSize rows. Requests whose deadline passed are
   * dropped on the way.
   *
   * Under overload (the oldest request has waited longer than NEWEST_FIRST_AFTER_MS) the newest
   * requests go first: their clients are still waiting, while the oldest ones' may have given
   * up. First-come-first-served would spend every run on the requests closest to being
   * abandoned, and answer them too late (adaptive LIFO, as Facebook's servers and CoDel-style
   * queues do). The old requests still run when the load falls, or leave when their clients
   * leave or their deadline passes.
   */
  private dispatch(): void {
    const now = performance.now();
    const wall = Date.now();
    const queue = this.queue;
    const newestFirst = now - queue[0].arrived > NEWEST_FIRST_AFTER_MS;
    const batch: Pending[] = [];
    let rows = 0;
    let gone = 0;
    for (let k = 0; k < queue.length; k++) {
      const p = queue[newestFirst ? queue.length - 1 - k : k];
      if (p.deadline <= wall) {
        this.leave(p);
        p.gone = true;
        gone++;
        this.observer.shed?.('deadline_exceeded');
        p.reject(deadlineExceeded());
        continue;
      }
      if (batch.length === 0 || (!batch[0].solo && !p.solo && p.key === batch[0].key && rows + p.rows <= this.options.maxBatchSize)) {
        this.leave(p);
        p.gone = true;
        gone++;
        batch.push(p);
        rows += p.rows;
      }
      // A full batch (or a request running alone) ends the walk: the rest keep their places.
      if (batch[0]?.solo || rows >= this.options.maxBatchSize) break;
    }
    if (gone) this.queue = queue.filter((p) => !p.gone);
    this.observer.queueDepth?.(this.queue.length);
    if (!batch.length) return;
    for (const p of batch) this.observer.queuedSeconds?.((now - p.arrived) / 1000);
    if (this.options.batching) this.observer.batchRows?.(rows);
    this.inFlight++;
    void this.execute(batch, rows).finally(() => {
      this.inFlight--;
      this.schedule();
    });
  }

  /**
   * How long a request queued now would wait: the runs ahead of it (the queued rows, in runs of
   * the rows recent runs took) times a recent run's duration (moving averages), shared by the run
   * slots. Zero until runs have been seen.
   */
  private expectedWaitMs(): number {
    if (!this.queuedRows || !this.runMs) return 0;
    return (this.runsAhead() * this.runMs) / this.maxInFlight;
  }

  /**
   * The runs the queued rows take: as many rows a run as recent runs had, and for a model that
   * batches at least as many as are queued, up to maxBatchSize (they join). Recent runs alone
   * would count a burst of lone requests after single ones (a function just woken) as one run each.
   */
  private runsAhead(): number {
    const joined = this.options.batching ? Math.min(this.options.maxBatchSize, this.queuedRows) : 1;
    return Math.ceil(this.queuedRows / Math.max(1, this.rowsPerRun, joined));
  }

  private async execute(batch: Pending[], rows: number): Promise<void> {
    const started = performance.now();
    try {
      await this.executeBatch(batch, rows);
    } finally {
      // Moving averages (weight 1/8) of a run's duration and rows.
      const ms = performance.now() - started;
      this.runMs = this.runMs ? this.runMs + (ms - this.runMs) / 8 : ms;
      this.rowsPerRun = this.rowsPerRun ? this.rowsPerRun + (rows - this.rowsPerRun) / 8 : rows;
    }
  }

  private async executeBatch(batch: Pending[], rows: number): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch;
      await this.runner(only.feeds, only.outputs, only.transfer, only.deadline).then(only.resolve, only.reject);
      return;
    }
    const feeds: Feeds = {};
    for (const name of Object.keys(batch[0].feeds)) feeds[name] = concat(batch.map((p) => p.feeds[name]));
    // The batch runs while any of its requests still has time.
    const deadline = Math.max(...batch.map((p) => p.deadline));
    let fetches: Fetches;
    try {
      // The joined tensors are the batch's own: they move to the inference thread.
      fetches = await this.runner(feeds, batch[0].outputs, true, deadline);
    } catch (err) {
      // Time ran out for all of them, or the model cannot run: each gets that answer.
      if (err instanceof ModelfnError && err.kind !== 'invalid_input' && err.kind !== 'model_failure') {
        for (const p of batch) p.reject(err);
        return;
      }
      // One bad request must not fail its neighbours: run each on its own to find out.
      await Promise.all(batch.map((p) => this.runner(p.feeds, p.outputs, p.transfer, p.deadline).then(p.resolve, p.reject)));
      return;
    }
    const mismatched = batch[0].outputs.find((n) => fetches[n].dims[0] !== rows);
    if (mismatched) {
      // The output's first dimension is not the batch: answer each request on its own.
      await Promise.all(batch.map((p) => this.runner(p.feeds, p.outputs, p.transfer, p.deadline).then(p.resolve, p.reject)));
      return;
    }
    let start = 0;
    for (const p of batch) {
      const own: Fetches = {};
      for (const name of p.outputs) own[name] = slice(fetches[name], start, p.rows);
      start += p.rows;
      p.resolve(own);
    }
  }
}
