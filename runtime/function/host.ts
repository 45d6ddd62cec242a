/**
 * One function and the state of its model: loading, ready, failed (to load), unavailable (its
 * inference thread died and is being restarted) or draining.
 */
import type { Context } from 'hono';
import type { FunctionContext, ResolvedFunction } from './define.ts';
import { ModelfnError } from '../core/errors.ts';
import type { Model } from '../engine/model.ts';
import type { ModelSignature } from '../tensor/infer.ts';
import type { TensorSpec } from '../tensor/types.ts';

/** The signal of a request served without the deadline middleware (never fires). */
const NEVER = new AbortController().signal;

export type HostState = 'loading' | 'ready' | 'failed' | 'unavailable' | 'draining';

export class FunctionHost implements FunctionContext {
  state: HostState = 'loading';
  /** Why the model failed to load, or why it is unavailable. */
  failure?: string;
  private loaded?: Model;
  /** Inputs and outputs by name, computed once when the model loads. */
  inputsByName = new Map<string, TensorSpec>();
  outputsByName = new Map<string, TensorSpec>();
  /** What the protocol's codec validates requests against. */
  readonly signature: ModelSignature;
  /** The loaded model's answers to the example requests, from its warm-up: the docs show them. */
  exampleAnswers?: { infer?: unknown; predict?: unknown };
  /** How long the loaded model's warm-up took, when it had one. */
  warmUpMs?: number;

  constructor(readonly fn: ResolvedFunction) {
    const host = this;
    this.signature = {
      name: fn.name,
      version: fn.version,
      get inputs() { return host.inputsByName; },
      get outputs() { return host.outputsByName; },
      labelsFor: (output) => this.labelsFor(output),
    };
  }

  /** The model, or `unavailable` (503) for the request when it is not ready. */
  get model(): Model {
    if (this.loaded && (this.state === 'ready' || this.state === 'draining')) return this.loaded;
    throw new ModelfnError('unavailable', this.notReadyReason(), { retryAfterSeconds: 1 });
  }

  /** The request's signal: fires when its client leaves or its time runs out (see FunctionContext). */
  signal(c: Context): AbortSignal {
    return c.get('life')?.signal ?? NEVER;
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  setModel(model: Model): void {
    this.loaded = model;
    this.exampleAnswers = undefined;
    this.warmUpMs = undefined;
    this.inputsByName = new Map(model.inputs.map((s) => [s.name, s]));
    this.outputsByName = new Map(model.outputs.map((s) => [s.name, s]));
    this.state = 'ready';
    this.failure = undefined;
  }

  setFailed(reason: string): void {
    this.state = 'failed';
    this.failure = reason;
  }

  /** The loaded model cannot run for now (its inference thread died): not ready, 503s, until setAvailable. */
  setUnavailable(reason: string): void {
    if (this.state !== 'ready' && this.state !== 'unavailable') return;
    this.state = 'unavailable';
    this.failure = reason;
  }

  /** The model runs again. */
  setAvailable(): void {
    if (this.state !== 'unavailable') return;
    this.state = 'ready';
    this.failure = undefined;
  }

  notReadyReason(): string {
    switch (this.state) {
      case 'loading': return `model '${this.fn.name}' is still loading`;
      case 'failed': return `model '${this.fn.name}' failed to load: ${this.failure}`;
      case 'unavailable': return `model '${this.fn.name}' is unavailable: ${this.failure}`;
      case 'draining': return 'server is shutting down';
      default: return `model '${this.fn.name}' is not ready`;
    }
  }

  /** Labels for an output: the per-output list, else the function's list. */
  labelsFor(output: string): readonly string[] | undefined {
    return this.fn.labels[output] ?? this.fn.defaultLabels;
  }
}
