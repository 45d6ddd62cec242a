/**
 * Dynamic batching: requests for the same model that arrive close together are joined along
 * the batch dimension, run as one `session.run`, and split back per request.
 *
 * A lone request (it finds the model idle and nobody queued) runs at once. A request that finds
 * others already there (a batch running, or requests queued) waits for companions: its group
 * runs as soon as it fills `maxBatchSize` rows, or once its oldest request has waited
 * `maxDelayMs`, whichever comes first (and a batch slot is free). A larger `maxDelayMs` makes
 * larger batches under load for at most that much extra latency. The queue is bounded: beyond
 * `maxQueue` requests the answer is 429.
 */
import * as ort from 'onnxruntime-common';
import type { NumericArray } from '../tensor/datatypes.ts';
import { HttpError } from '../core/errors.ts';
import type { Feeds, Fetches, TensorSpec } from '../tensor/types.ts';

export interface BatchOptions {
  maxBatchSize: number;
  maxDelayMs: number;
  maxQueue: number;
  /** Batches that may run at once. */
  maxInFlight?: number;
  /** A request still queued this long after it arrived is dropped (its client already got a 504). */
  timeoutMs: number;
}

export interface BatchObserver {
  batchRows?(rows: number): void;
  queuedSeconds?(seconds: number): void;
  queueDepth?(depth: number): void;
}

/** Runs one session call; `transfer` when the feeds may move to the inference thread. */
type Runner = (feeds: Feeds, outputNames: readonly string[], transfer: boolean) => Promise<Fetches>;

interface Pending {
  feeds: Feeds;
  rows: number;
  key: string;
  outputs: readonly string[];
  /** The caller gave the feeds up (see Model.run). */
  transfer: boolean;
  /** It found the model idle and nobody queued: it never waits. */
  lone: boolean;
  arrived: number;
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

export class BatchQueue {
  private queue: Pending[] = [];
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private readonly maxInFlight: number;

  constructor(
    private readonly runner: Runner,
    private readonly allOutputs: readonly string[],
    private readonly options: BatchOptions,
    private readonly observer: BatchObserver = {},
  ) {
    this.maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  /** Requests waiting now. */
  get depth(): number {
    return this.queue.length;
  }

  /** Queues a request; resolves with its own slice of the batch's outputs. */
  run(feeds: Feeds, outputNames?: readonly string[], transfer = false): Promise<Fetches> {
    const names = Object.keys(feeds);
    const rows = names.length ? feeds[names[0]].dims[0] : 0;
    const outputs = outputNames ?? this.allOutputs;
    // Requests that cannot be joined (empty, or inputs disagreeing on rows) run on their own.
    if (!rows || names.some((n) => feeds[n].dims[0] !== rows) || rows >= this.options.maxBatchSize) {
      return this.runner(feeds, outputs, transfer);
    }
    if (this.queue.length >= this.options.maxQueue) {
      return Promise.reject(new HttpError(429, `model is overloaded: ${this.queue.length} requests are already queued; retry shortly`, { 'Retry-After': '1' }));
    }
    return new Promise((resolve, reject) => {
      const lone = this.queue.length === 0 && this.inFlight === 0;
      this.queue.push({ feeds, rows, key: innerKey(feeds, outputs), outputs, transfer, lone, arrived: performance.now(), resolve, reject });
      this.observer.queueDepth?.(this.queue.length);
      this.schedule();
    });
  }

  private schedule(): void {
    while (this.queue.length && this.inFlight < this.maxInFlight) {
      const waited = performance.now() - this.queue[0].arrived;
      const rowsQueued = this.queue.reduce((n, p) => n + p.rows, 0);
      const ready = this.queue[0].lone || rowsQueued >= this.options.maxBatchSize || waited >= this.options.maxDelayMs;
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

  /** Takes the oldest request and every queued request compatible with it, up to maxBatchSize rows. */
  private dispatch(): void {
    const now = performance.now();
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    let rows = 0;
    for (const p of this.queue) {
      if (now - p.arrived > this.options.timeoutMs) {
        p.reject(new HttpError(504, 'request timed out while queued for a batch'));
        continue;
      }
      if ((batch.length === 0 || (p.key === batch[0].key && rows + p.rows <= this.options.maxBatchSize))) {
        batch.push(p);
        rows += p.rows;
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    this.observer.queueDepth?.(this.queue.length);
    if (!batch.length) return;
    for (const p of batch) this.observer.queuedSeconds?.((now - p.arrived) / 1000);
    this.observer.batchRows?.(rows);
    this.inFlight++;
    void this.execute(batch, rows).finally(() => {
      this.inFlight--;
      this.schedule();
    });
  }

  private async execute(batch: Pending[], rows: number): Promise<void> {
    if (batch.length === 1) {
      const [only] = batch;
      await this.runner(only.feeds, only.outputs, only.transfer).then(only.resolve, only.reject);
      return;
    }
    const feeds: Feeds = {};
    for (const name of Object.keys(batch[0].feeds)) feeds[name] = concat(batch.map((p) => p.feeds[name]));
    let fetches: Fetches;
    try {
      // The joined tensors are the batch's own: they move to the inference thread.
      fetches = await this.runner(feeds, batch[0].outputs, true);
    } catch {
      // One bad request must not fail its neighbours: run each on its own to find out.
      await Promise.all(batch.map((p) => this.runner(p.feeds, p.outputs, p.transfer).then(p.resolve, p.reject)));
      return;
    }
    const mismatched = batch[0].outputs.find((n) => fetches[n].dims[0] !== rows);
    if (mismatched) {
      // The output's first dimension is not the batch: answer each request on its own.
      await Promise.all(batch.map((p) => this.runner(p.feeds, p.outputs, p.transfer).then(p.resolve, p.reject)));
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
