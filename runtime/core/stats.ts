/**
 * The live view's figures: a function's state and its last minute (requests, errors, latency
 * buckets, batches), with the arithmetic that turns windows into what a person reads and adds
 * up the windows of several replicas. Pure: the HTTP route that measures them is
 * runtime/http/stats.ts; the pages draw them (runtime/pages/ui.ts).
 */

/**
 * A function's state as the live view shows it. A replica reports its host's state (loading,
 * ready, failed, draining); the gateway side adds `unavailable` (no replica answers) and, with
 * scale to zero, `asleep` and `waking` (answered by whatever holds the function while it
 * sleeps, without waking it).
 */
export type FunctionState = 'loading' | 'ready' | 'failed' | 'draining' | 'asleep' | 'waking' | 'unavailable';

/** The raw window of one replica or the sum of several: counts add, buckets add. */
export interface StatsWindow {
  seconds: number;
  requests: number;
  /** Answers with status 500 or more. */
  errors: number;
  /** Upper bounds of the latency buckets, in seconds (the last, +Inf, is omitted). */
  le: number[];
  /** Requests per bucket, not cumulative; one more entry than `le` (the +Inf bucket). */
  counts: number[];
  batches: number;
  batchRows: number;
}

export interface FunctionStats {
  name: string;
  state: FunctionState;
  /** Why the function is not ready, when it is not. */
  reason?: string;
  /** Replicas that answered, and how many of them are ready. */
  replicas: number;
  readyReplicas: number;
  windowSeconds: number;
  requestsPerSecond: number;
  errorsPerSecond: number;
  /** Median and 99th percentile latency in milliseconds; null without requests. */
  latencyMs: { p50: number | null; p99: number | null };
  /** Average rows per model run of the dynamic batcher; null without batched runs. */
  batchSize: number | null;
  window: StatsWindow;
  /** The version one replica runs, in its own answer (`?replica=self`) when the function has several. */
  version?: string;
  /** With several versions: each one's figures and its share of the split in force, in version order. */
  versions?: VersionStats[];
}

/** One version's figures, with what the split in force gives it. */
export interface VersionStats extends Omit<FunctionStats, 'name' | 'version' | 'versions'> {
  version: string;
  /** Percent of the function's requests the split sends it. */
  traffic: number;
  /** Percent of the requests copied to it (a shadow), when it gets copies. */
  shadow?: number;
}

/** Percent of requests per version (a `traffic` or `shadow` split), as runtime/function/traffic.ts has it. */
type Shares = readonly { version: string; percent: number }[];

/** Latency quantile (ms) from bucket counts, interpolated within the bucket as Prometheus does. */
export function quantileMs(q: number, le: readonly number[], counts: readonly number[]): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (seen + counts[i] >= rank && counts[i] > 0) {
      if (i === le.length) return round(le[le.length - 1] * 1000);
      const lower = i === 0 ? 0 : le[i - 1];
      return round((lower + (le[i] - lower) * ((rank - seen) / counts[i])) * 1000);
    }
    seen += counts[i];
  }
  return round(le[le.length - 1] * 1000);
}

/** Three significant digits: enough for a glance, stable to read. */
const round = (x: number) => (x === 0 ? 0 : Number(x.toPrecision(3)));

/** A window with nothing in it: the figures of a function that is not running (asleep, failed). */
export const emptyWindow = (): StatsWindow => ({ seconds: 0, requests: 0, errors: 0, le: [], counts: [0], batches: 0, batchRows: 0 });

/** The figures a person reads, from a raw window. */
export function summarize(name: string, state: FunctionState, window: StatsWindow, replicas = 1, readyReplicas = state === 'ready' ? 1 : 0, reason?: string): FunctionStats {
  const seconds = Math.max(window.seconds, 1);
  return {
    name,
    state,
    ...(reason ? { reason } : {}),
    replicas,
    readyReplicas,
    windowSeconds: Math.round(window.seconds),
    requestsPerSecond: round(window.requests / seconds),
    errorsPerSecond: round(window.errors / seconds),
    latencyMs: { p50: quantileMs(0.5, window.le, window.counts), p99: quantileMs(0.99, window.le, window.counts) },
    batchSize: window.batches > 0 ? round(window.batchRows / window.batches) : null,
    window,
  };
}

/** The best state among replicas: one ready replica makes the function ready. */
export function combinedState(states: readonly FunctionState[]): FunctionState {
  for (const s of ['ready', 'loading', 'waking', 'draining', 'failed', 'asleep'] as const) if (states.includes(s)) return s;
  return 'unavailable';
}

/** The figures of several replicas' own answers, added up (the state is the best of theirs). */
export function combineReplicas(name: string, answers: readonly FunctionStats[]): FunctionStats {
  const state = combinedState(answers.map((a) => a.state));
  const reason = state === 'ready' ? undefined : answers.find((a) => a.reason)?.reason;
  return summarize(name, state, addWindows(answers.map((a) => a.window)), answers.length, answers.filter((a) => a.state === 'ready').length, reason);
}

/**
 * A function with several versions: each version's figures from its replicas' own answers (each
 * says its `version`), with its share of `split`, the split in force; a version no replica
 * answers for is unavailable. The function's own figures add up the versions that answer
 * clients: a version that only gets copies (a shadow) is left out, as its requests are the
 * served versions' again.
 *
 * @example versionedStats('flowers', ['1', '2'], answers, { traffic: [{ version: '1', percent: 80 }, { version: '2', percent: 20 }], shadow: [] })
 */
export function versionedStats(name: string, versions: readonly string[], answers: readonly FunctionStats[], split: { traffic: Shares; shadow: Shares }): FunctionStats {
  const percentOf = (shares: Shares, version: string) => shares.find((s) => s.version === version)?.percent ?? 0;
  const rows = versions.map((version): VersionStats => {
    const mine = answers.filter((a) => a.version === version);
    const figures = mine.length ? combineReplicas(name, mine) : summarize(name, 'unavailable', emptyWindow(), 0, 0, `no replica of version ${version} is answering`);
    const shadow = percentOf(split.shadow, version);
    const { state, reason, replicas, readyReplicas, windowSeconds, requestsPerSecond, errorsPerSecond, latencyMs, batchSize, window } = figures;
    return {
      version, traffic: percentOf(split.traffic, version), ...(shadow ? { shadow } : {}),
      state, ...(reason ? { reason } : {}), replicas, readyReplicas, windowSeconds, requestsPerSecond, errorsPerSecond, latencyMs, batchSize, window,
    };
  });
  const serving = rows.filter((r) => r.replicas > 0 && (r.traffic > 0 || !r.shadow));
  const whole = answers.length ? combineReplicas(name, answers) : summarize(name, 'unavailable', emptyWindow(), 0, 0, `no replica of '${name}' is answering`);
  const window = serving.length ? addWindows(serving.map((r) => r.window)) : emptyWindow();
  return { ...summarize(name, whole.state, window, whole.replicas, whole.readyReplicas, whole.reason), versions: rows };
}

/** Adds the windows of several replicas. */
export function addWindows(windows: readonly StatsWindow[]): StatsWindow {
  const [first] = windows;
  return {
    seconds: Math.max(...windows.map((w) => w.seconds)),
    requests: windows.reduce((a, w) => a + w.requests, 0),
    errors: windows.reduce((a, w) => a + w.errors, 0),
    le: first.le,
    counts: first.counts.map((_, i) => windows.reduce((a, w) => a + (w.counts[i] ?? 0), 0)),
    batches: windows.reduce((a, w) => a + w.batches, 0),
    batchRows: windows.reduce((a, w) => a + w.batchRows, 0),
  };
}
