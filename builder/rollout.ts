/**
 * `modelfn rollout`'s decisions, apart from what runs Docker (builder/docker/rollout.ts): the
 * options and their defaults, the splits of each step, and the analysis that passes, fails or
 * extends a step from two versions' figures over the same window.
 *
 * The analysis follows the shape of Flagger's loop (a canary's request success rate and latency
 * checked every interval against thresholds, a rollback at the first failed check) but compares
 * the canary with the stable version on the same live traffic rather than with fixed numbers: a
 * model that is slow or failing everywhere is not the new version's regression.
 */
import type { Split } from '../runtime/function/traffic.ts';
import { toHundredths } from '../runtime/function/traffic.ts';

/** How a rollout proceeds and what counts as a regression. */
export interface RolloutOptions {
  /** The canary's percent at each step, increasing, the last 100. */
  steps: number[];
  /** Seconds each step is watched before it is judged. */
  intervalSeconds: number;
  /** Percentage points the canary's error rate (status >= 500) may lie above the stable version's. */
  maxErrorRate: number;
  /** How many times the stable version's p99 the canary's may reach... */
  maxP99Ratio: number;
  /** ...and how many milliseconds above it: a p99 fails only beyond both (a 2 ms model's 3.5 ms is noise, not a regression). */
  p99SlackMs: number;
  /** Requests the canary must answer in a step before it is judged. */
  minRequests: number;
  /** How much longer a step may run waiting for `minRequests`, in seconds, before the rollout fails. */
  maxWaitSeconds: number;
}

/**
 * The defaults: Flagger's own (a minute's interval, at most 1% of errors) where they fit, with the
 * error rate taken relative to the stable version's. 100 requests make one stray error 1 point,
 * which passes; two fail. The p99's 50 ms slack absorbs a fast model's jitter (iris answers in
 * 5 ms), its ratio 1.5 decides for models slower than 100 ms. One pause of a process (a GC, a busy
 * host: 80-125 ms measured on a shared 2-core machine) holds a handful of requests, far below 1%
 * of a minute's step; in a step of a few hundred requests it is the p99 (a larger --p99-slack then).
 */
export const ROLLOUT_DEFAULTS: RolloutOptions = {
  steps: [10, 50, 100],
  intervalSeconds: 60,
  maxErrorRate: 1,
  maxP99Ratio: 1.5,
  p99SlackMs: 50,
  minRequests: 100,
  maxWaitSeconds: 240,
};

/** The command's flags, as node:util parseArgs gives them. */
export interface RolloutFlags {
  steps?: string;
  interval?: string;
  'max-error-rate'?: string;
  'max-p99-ratio'?: string;
  'p99-slack'?: string;
  'min-requests'?: string;
  'max-wait'?: string;
}

/** A number flag within [min, max], or the one-line reason it is refused. */
function numberFlag(flag: string, raw: string | undefined, fallback: number, min: number, max: number, what: string, integer = false): number | string {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) return `--${flag} ${raw}: ${what}`;
  return value;
}

/** `--steps 10,50,100`: increasing percents with at most two decimals, above 0, ending at 100. */
function stepsFlag(raw: string | undefined): number[] | string {
  if (raw === undefined) return ROLLOUT_DEFAULTS.steps;
  const steps = raw.split(',').map((s) => Number(s.trim().replace(/%$/, '')));
  const wrong = `--steps ${raw}: percents of the new version, increasing, ending at 100, e.g. 10,50,100`;
  if (raw.split(',').some((s) => s.trim() === '')) return wrong;
  if (steps.some((p) => !Number.isFinite(p) || p <= 0 || p > 100 || Math.abs(toHundredths(p) - p * 100) > 1e-6)) return wrong;
  if (steps.some((p, i) => i > 0 && p <= steps[i - 1]) || steps[steps.length - 1] !== 100) return wrong;
  return steps;
}

/**
 * The options named by the command's flags, each absent one at its default (`--max-wait` at four
 * intervals). Returns the options, or the one-line reason a flag is refused.
 *
 * @example rolloutOptions({ steps: '5,25,100', interval: '30' }) // { steps: [5, 25, 100], intervalSeconds: 30, maxWaitSeconds: 120, ... }
 */
export function rolloutOptions(flags: RolloutFlags): RolloutOptions | string {
  const steps = stepsFlag(flags.steps);
  if (typeof steps === 'string') return steps;
  const intervalSeconds = numberFlag('interval', flags.interval, ROLLOUT_DEFAULTS.intervalSeconds, 1, 3600, 'seconds from 1 to 3600');
  if (typeof intervalSeconds === 'string') return intervalSeconds;
  const options = {
    steps,
    intervalSeconds,
    maxErrorRate: numberFlag('max-error-rate', flags['max-error-rate'], ROLLOUT_DEFAULTS.maxErrorRate, 0, 100, 'percentage points from 0 to 100'),
    maxP99Ratio: numberFlag('max-p99-ratio', flags['max-p99-ratio'], ROLLOUT_DEFAULTS.maxP99Ratio, 1, 1000, 'a ratio of at least 1'),
    p99SlackMs: numberFlag('p99-slack', flags['p99-slack'], ROLLOUT_DEFAULTS.p99SlackMs, 0, 600_000, 'milliseconds, 0 or more'),
    minRequests: numberFlag('min-requests', flags['min-requests'], ROLLOUT_DEFAULTS.minRequests, 1, 1e9, 'a whole number of requests, 1 or more', true),
    maxWaitSeconds: numberFlag('max-wait', flags['max-wait'], intervalSeconds * 4, 0, 86_400, 'seconds from 0 to 86400'),
  };
  for (const value of Object.values(options)) if (typeof value === 'string') return value;
  return options as RolloutOptions;
}

/** The plan of a rollout: the version compared with, and the split of each step. */
export interface RolloutPlan {
  canary: string;
  stable: string;
  /** The canary's percent and the split in force at each step still to take. */
  steps: { percent: number; split: Split }[];
  /** Steps at or below the canary's share before the rollout: not taken. */
  skipped: number[];
}

/**
 * The split at one step: the canary gets `percent`, the other versions the rest in the
 * proportions they had before (hundredths of a percent, as nginx reads them), the stable version
 * taking what rounding leaves.
 *
 * @example stepSplit([{ version: '1', percent: 100 }, { version: '2', percent: 0 }], '2', '1', 10) // 1=90 2=10
 */
export function stepSplit(before: Split, canary: string, stable: string, percent: number): Split {
  const canaryBefore = toHundredths(before.find((s) => s.version === canary)?.percent ?? 0);
  const rest = 10000 - toHundredths(percent);
  const others = before.filter((s) => s.version !== canary && s.version !== stable);
  const scaled = new Map(others.map((s) => [s.version, Math.floor((toHundredths(s.percent) * rest) / (10000 - canaryBefore))]));
  const stableShare = rest - [...scaled.values()].reduce((a, b) => a + b, 0);
  const versions = before.some((s) => s.version === canary) ? before.map((s) => s.version) : [...before.map((s) => s.version), canary];
  return versions.map((version) => ({
    version,
    percent: (version === canary ? toHundredths(percent) : version === stable ? stableShare : scaled.get(version) ?? 0) / 100,
  }));
}

/**
 * Plans rolling `canary` out from the split in force: the stable version is the other version with
 * the largest share (the highest one on a tie). Returns the plan, or the one-line reason there is
 * nothing to roll out.
 *
 * @example planRollout(['1', '2'], [{ version: '1', percent: 100 }], '2', [10, 50, 100]).stable // '1'
 */
export function planRollout(name: string, versions: readonly string[], before: Split, canary: string, steps: readonly number[]): RolloutPlan | string {
  if (!versions.includes(canary)) return `${name}: no version '${canary}' (versions: ${versions.join(', ')})`;
  const canaryBefore = before.find((s) => s.version === canary)?.percent ?? 0;
  if (canaryBefore >= 100) return `${name}: version ${canary} already serves all of its traffic; nothing to roll out`;
  const stable = before
    .filter((s) => s.version !== canary && s.percent > 0)
    .reduce((best, s) => (!best || s.percent > best.percent || (s.percent === best.percent && versions.indexOf(s.version) > versions.indexOf(best.version)) ? s : best), undefined as Split[number] | undefined)!;
  const taken = steps.filter((p) => p > canaryBefore);
  return {
    canary,
    stable: stable.version,
    steps: taken.map((percent) => ({ percent, split: stepSplit(before, canary, stable.version, percent) })),
    skipped: steps.filter((p) => p <= canaryBefore),
  };
}

/** One version's figures over a window: the requests it answered, those with status >= 500, its p99. */
export interface WindowFigures {
  version: string;
  requests: number;
  errors: number;
  p99Ms: number | null;
}

/** A step's verdict: pass (the figures said), fail (why), or wait for more traffic (why). */
export type Verdict = { verdict: 'pass' | 'fail' | 'wait'; reason: string };

const errorRate = (f: WindowFigures) => (f.requests ? (100 * f.errors) / f.requests : 0);
const pct = (x: number) => `${Number(x.toFixed(2))}%`;
const ms = (x: number) => `${Number(x.toPrecision(3))} ms`;
/**
 * One version's figures in a line, as the rollout prints them.
 *
 * @example describeFigures({ version: '2', requests: 300, errors: 3, p99Ms: 4.2 }) // 'version 2 300 requests, 1% errors, p99 4.2 ms'
 */
export const describeFigures = (f: WindowFigures) => `version ${f.version} ${f.requests} requests, ${pct(errorRate(f))} errors, p99 ${f.p99Ms === null ? '-' : ms(f.p99Ms)}`;

/**
 * Judges one step from the canary's and the stable version's figures over the same window:
 *
 * - fewer than `minRequests` canary requests: wait (too little to judge; never a silent pass);
 * - the stable version is compared with when it answered `minRequests` itself, else `baseline`
 *   (its figures at an earlier step, e.g. at the 100% step where it gets nothing), else nothing:
 *   the canary's error rate is then held against 0 and its p99 is not judged;
 * - fail when the canary's error rate lies more than `maxErrorRate` points above the stable's;
 * - fail when its p99 lies above both `maxP99Ratio` times the stable's and the stable's plus `p99SlackMs`;
 * - else pass.
 *
 * @example analyseStep(canary, stable, undefined, ROLLOUT_DEFAULTS) // { verdict: 'fail', reason: 'error rate: version 2 ...' }
 */
export function analyseStep(canary: WindowFigures, stable: WindowFigures, baseline: WindowFigures | undefined, options: Pick<RolloutOptions, 'maxErrorRate' | 'maxP99Ratio' | 'p99SlackMs' | 'minRequests'>): Verdict {
  if (canary.requests < options.minRequests) {
    return { verdict: 'wait', reason: `version ${canary.version} answered ${canary.requests} requests, fewer than --min-requests ${options.minRequests}` };
  }
  const live = stable.requests >= options.minRequests;
  const reference = live ? stable : baseline;
  const against = !reference
    ? `version ${stable.version} had too little traffic to compare with (${stable.requests} requests)`
    : live ? describeFigures(reference) : `${describeFigures(reference)} at an earlier step (now ${stable.requests} requests)`;
  const canaryRate = errorRate(canary);
  const stableRate = reference ? errorRate(reference) : 0;
  if (canaryRate - stableRate > options.maxErrorRate) {
    return {
      verdict: 'fail',
      reason: `error rate: version ${canary.version} ${pct(canaryRate)} (${canary.errors} of ${canary.requests} requests) against ${pct(stableRate)} for version ${stable.version}${reference ? ` (${reference.errors} of ${reference.requests})` : ' (no traffic to compare with: held against 0)'}, more than --max-error-rate ${options.maxErrorRate} point${options.maxErrorRate === 1 ? '' : 's'} above`,
    };
  }
  if (reference && canary.p99Ms !== null && reference.p99Ms !== null) {
    const limit = Math.max(reference.p99Ms * options.maxP99Ratio, reference.p99Ms + options.p99SlackMs);
    if (canary.p99Ms > limit) {
      return {
        verdict: 'fail',
        reason: `p99 latency: version ${canary.version} ${ms(canary.p99Ms)} against ${ms(reference.p99Ms)} for version ${stable.version}, above ${ms(limit)} (the larger of --max-p99-ratio ${options.maxP99Ratio} times it and it plus --p99-slack ${options.p99SlackMs} ms)`,
      };
    }
  }
  return { verdict: 'pass', reason: `${describeFigures(canary)}; ${against}` };
}
