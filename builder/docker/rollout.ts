/**
 * `modelfn rollout` on a running compose stack: the new version's share raised step by step with
 * `modelfn traffic`'s graceful reload (setTraffic), each step watched on live traffic through the
 * versions' own metrics and judged by builder/rollout.ts; at the first regression, too little
 * traffic to judge, or an interruption, the split in force before the rollout is put back.
 */
import { join } from 'node:path';
import { deploymentUnits, serviceName } from '../policy.ts';
import { discoverFunctions } from '../functions.ts';
import { analyseStep, describeFigures, planRollout, type RolloutOptions, type RolloutPlan, type WindowFigures } from '../rollout.ts';
import { serviceReader } from './metrics-reader.ts';
import { containers, countsBetween, findFunction, liveSplit, setTraffic, type Sample } from './traffic.ts';
import { readConfig } from '../../runtime/core/config.ts';
import type { ResolvedFunction } from '../../runtime/function/define.ts';
import type { Split } from '../../runtime/function/traffic.ts';

/** A failure meant for the person who ran the command (cli/errors.ts prints its one line). */
class RolloutError extends Error {
  override name = 'CliError';
}

/** Why a step stops the rollout: a regression, too little traffic to judge, or an interruption. */
class Stopped extends Error {}

const INTERRUPTED = 'interrupted (Ctrl-C or SIGTERM)';
const shares = (split: Split) => split.filter((s) => s.percent > 0).map((s) => `${s.version}=${s.percent}`).join(' ');
const args = (split: Split) => split.map((s) => `${s.version}=${s.percent}`);

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Stopped(INTERRUPTED));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', abort);
      resolve();
    }, ms);
    const abort = () => {
      clearTimeout(timer);
      reject(new Stopped(INTERRUPTED));
    };
    signal?.addEventListener('abort', abort, { once: true });
  });
}

/**
 * `modelfn rollout <name> <N>`: moves the function's traffic to version N in `options.steps`,
 * judging each step, and either leaves N at 100% (kept for `npm run up`, as `modelfn traffic`
 * keeps a change) or puts the split before it back and throws the one-line reason. `signal`
 * (Ctrl-C) rolls back too. Resolves to the split in force at the end.
 *
 * @example await rollout(root, 'modelfn', 'iris', '2', ROLLOUT_DEFAULTS, console.log, controller.signal);
 */
export async function rollout(root: string, project: string, name: string, canary: string, options: RolloutOptions, log: (line: string) => void, signal?: AbortSignal): Promise<Split> {
  const { functions, problems } = await discoverFunctions(join(root, 'functions'), readConfig({}));
  if (problems.length) throw new RolloutError(`functions/ has problems (${problems[0]}); run modelfn build`);
  const fn = findFunction(functions, name);
  if (fn.versions.length < 2) throw new RolloutError(`${name} has one version (${fn.versions[0].version}); add a version folder (functions/${name}/<N>/model.onnx) to roll a new one out`);
  const before = await liveSplit(project, fn);
  const plan = planRollout(name, fn.versions.map((v) => v.version), before, canary, options.steps);
  if (typeof plan === 'string') throw new RolloutError(plan);
  const units = deploymentUnits(fn);
  const service = (version: string) => serviceName(units.find((u) => u.version === version)!);
  // Requests the gateway cannot deliver never reach a version's metrics: a version without a running container is refused here.
  for (const version of [canary, plan.stable]) {
    if (!(await containers('compose', project, service(version))).length) throw new RolloutError(`${name}: version ${version} has no running container in ${project} (service ${service(version)}); start it with npm run up`);
  }
  const readers = await Promise.all([serviceReader(project, service(canary)), serviceReader(project, service(plan.stable))]);
  try {
    return await runSteps(root, project, fn, plan, before, options, log, () => Promise.all(readers.map((r) => r.sample())), signal);
  } finally {
    for (const reader of readers) reader.close();
  }
}

/** The steps of a planned rollout, `sample` reading both versions' counters (the canary's first). */
async function runSteps(root: string, project: string, fn: ResolvedFunction, plan: RolloutPlan, before: Split, options: RolloutOptions, log: (line: string) => void, sample: () => Promise<Sample[]>, signal?: AbortSignal): Promise<Split> {
  const { name } = fn;
  const { canary } = plan;
  const steps = plan.steps.map((s) => s.percent).join(', ');
  log(`${name}: rollout of version ${canary} on ${project} from ${shares(before)}, compared with version ${plan.stable}; steps ${steps}%, ${options.intervalSeconds} s each${plan.skipped.length ? ` (${plan.skipped.join(', ')}% skipped: version ${canary} has ${before.find((s) => s.version === canary)?.percent}% already)` : ''}`);

  let changed = false;
  const put = async (split: Split) => {
    const started = performance.now();
    // setTraffic's own line speaks of one change; the rollout says its steps its way.
    await setTraffic(root, project, name, args(split), () => {});
    changed = true;
    return Math.round(performance.now() - started);
  };
  /** Puts the split before the rollout back, then throws the one line that says why. */
  const rollBack = async (why: string, at: string): Promise<never> => {
    if (!changed) throw new RolloutError(`${name}: ${why}`);
    try {
      const took = await put(before);
      log(`  rolled back: ${shares(before)} in force again (${took} ms)`);
    } catch (err) {
      throw new RolloutError(`${name}: ${why}; rolling back to ${shares(before)} failed too (${(err as Error).message.split('\n')[0]}): run modelfn traffic ${name} ${args(before).join(' ')}`);
    }
    throw new RolloutError(`${name}: version ${canary} rolled back to ${shares(before)} ${at}: ${why}`);
  };

  let baseline: WindowFigures | undefined;
  for (const [i, step] of plan.steps.entries()) {
    const at = `at step ${i + 1} (${step.percent}%)`;
    try {
      if (signal?.aborted) throw new Stopped(INTERRUPTED);
      const took = await put(step.split);
      log(`  step ${i + 1}/${plan.steps.length}: ${shares(step.split)} in force (${took} ms)`);
      const [canaryStart, stableStart] = await sample();
      const started = Date.now();
      for (;;) {
        await sleep(options.intervalSeconds * 1000, signal);
        const [canaryNow, stableNow] = await sample();
        const figures = {
          canary: { version: canary, ...countsBetween(canaryStart, canaryNow) },
          stable: { version: plan.stable, ...countsBetween(stableStart, stableNow) },
        };
        const verdict = analyseStep(figures.canary, figures.stable, baseline, options);
        const seconds = Math.round((Date.now() - started) / 1000);
        if (verdict.verdict === 'fail') {
          log(`  ✗ ${step.percent}% after ${seconds} s: ${verdict.reason}`);
          throw new Stopped(verdict.reason);
        }
        if (verdict.verdict === 'pass') {
          log(`  ✓ ${step.percent}% after ${seconds} s: ${verdict.reason}`);
          if (figures.stable.requests >= options.minRequests) baseline = figures.stable;
          break;
        }
        const waited = seconds - options.intervalSeconds;
        if (waited >= options.maxWaitSeconds) {
          const reason = `too little traffic to judge: ${verdict.reason} in ${seconds} s (the step ran --max-wait ${options.maxWaitSeconds} s longer than --interval)`;
          log(`  ✗ ${step.percent}% after ${seconds} s: ${reason}`);
          throw new Stopped(reason);
        }
        log(`  … ${step.percent}% after ${seconds} s: ${verdict.reason}; the step goes on (${describeFigures(figures.stable)})`);
      }
    } catch (err) {
      // A regression or an interruption, or the engine failing once the split has changed: the split before goes back.
      if (err instanceof Stopped || changed) await rollBack(err instanceof Stopped ? err.message : (err as Error).message.split('\n')[0], at);
      throw err;
    }
  }
  const last = plan.steps[plan.steps.length - 1].split;
  const declared = shares(fn.traffic) === shares(last);
  log(`${name}: version ${canary} promoted: ${shares(last)} in force${declared ? ' (the declared split)' : `, kept for npm run up until the traffic declared for ${name} changes`}`);
  return last;
}
