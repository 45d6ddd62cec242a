import { describe, expect, it } from 'vitest';
import { ROLLOUT_DEFAULTS, analyseStep, planRollout, rolloutOptions, stepSplit, type WindowFigures } from './rollout.ts';

const figures = (version: string, requests: number, errors: number, p99Ms: number | null): WindowFigures => ({ version, requests, errors, p99Ms });
const split = (record: Record<string, number>) => Object.entries(record).map(([version, percent]) => ({ version, percent }));

describe('modelfn rollout flags', () => {
  it('has Flagger-like defaults: 10, 50, 100 percent, a minute a step, 1 point of errors, p99 1.5x or 50 ms', () => {
    expect(rolloutOptions({})).toEqual(ROLLOUT_DEFAULTS);
    expect(ROLLOUT_DEFAULTS).toEqual({ steps: [10, 50, 100], intervalSeconds: 60, maxErrorRate: 1, maxP99Ratio: 1.5, p99SlackMs: 50, minRequests: 100, maxWaitSeconds: 240 });
  });

  it('takes every threshold from its flag, --max-wait defaulting to four intervals', () => {
    expect(rolloutOptions({ steps: '5, 25%,50,100', interval: '3', 'max-error-rate': '0.5', 'max-p99-ratio': '2', 'p99-slack': '10', 'min-requests': '20', 'max-wait': '9' }))
      .toEqual({ steps: [5, 25, 50, 100], intervalSeconds: 3, maxErrorRate: 0.5, maxP99Ratio: 2, p99SlackMs: 10, minRequests: 20, maxWaitSeconds: 9 });
    expect(rolloutOptions({ interval: '30' })).toMatchObject({ intervalSeconds: 30, maxWaitSeconds: 120 });
    expect(rolloutOptions({ steps: '100' })).toMatchObject({ steps: [100] });
    expect(rolloutOptions({ steps: '0.5,100', 'max-wait': '0' })).toMatchObject({ steps: [0.5, 100], maxWaitSeconds: 0 });
  });

  it('refuses a bad flag in one line naming it and its value', () => {
    const steps = 'percents of the new version, increasing, ending at 100, e.g. 10,50,100';
    const refused: [Record<string, string>, string][] = [
      [{ steps: '10,50' }, `--steps 10,50: ${steps}`],
      [{ steps: '50,10,100' }, `--steps 50,10,100: ${steps}`],
      [{ steps: '10,10,100' }, `--steps 10,10,100: ${steps}`],
      [{ steps: '0,100' }, `--steps 0,100: ${steps}`],
      [{ steps: '10,,100' }, `--steps 10,,100: ${steps}`],
      [{ steps: 'ten,100' }, `--steps ten,100: ${steps}`],
      [{ steps: '10.125,100' }, `--steps 10.125,100: ${steps}`],
      [{ interval: '0' }, '--interval 0: seconds from 1 to 3600'],
      [{ interval: 'soon' }, '--interval soon: seconds from 1 to 3600'],
      [{ 'max-error-rate': '-1' }, '--max-error-rate -1: percentage points from 0 to 100'],
      [{ 'max-p99-ratio': '0.9' }, '--max-p99-ratio 0.9: a ratio of at least 1'],
      [{ 'p99-slack': '' }, '--p99-slack : milliseconds, 0 or more'],
      [{ 'min-requests': '2.5' }, '--min-requests 2.5: a whole number of requests, 1 or more'],
      [{ 'min-requests': '0' }, '--min-requests 0: a whole number of requests, 1 or more'],
      [{ 'max-wait': '-3' }, '--max-wait -3: seconds from 0 to 86400'],
    ];
    for (const [flags, message] of refused) expect(rolloutOptions(flags)).toBe(message);
  });
});

describe('the steps of a rollout', () => {
  it('compares with the other version of the largest share, and gives the rest to the others in their proportions', () => {
    const plan = planRollout('flowers', ['1', '2', '3'], split({ 1: 80, 2: 20 }), '3', [10, 50, 100]);
    expect(plan).toEqual({
      canary: '3',
      stable: '1',
      skipped: [],
      steps: [
        { percent: 10, split: split({ 1: 72, 2: 18, 3: 10 }) },
        { percent: 50, split: split({ 1: 40, 2: 10, 3: 50 }) },
        { percent: 100, split: split({ 1: 0, 2: 0, 3: 100 }) },
      ],
    });
  });

  it('keeps the shares to hundredths of a percent summing to 100, the stable version taking what rounding leaves', () => {
    const s = stepSplit(split({ 1: 33.33, 2: 66.67 }), '3', '2', 10);
    expect(s).toEqual(split({ 1: 29.99, 2: 60.01, 3: 10 }));
    expect(s.reduce((sum, x) => sum + Math.round(x.percent * 100), 0)).toBe(10000);
  });

  it('starts from the new version\'s share: steps at or below it are skipped', () => {
    const plan = planRollout('flowers', ['1', '2'], split({ 1: 80, 2: 20 }), '2', [10, 50, 100]);
    expect(plan).toMatchObject({ stable: '1', skipped: [10], steps: [{ percent: 50, split: split({ 1: 50, 2: 50 }) }, { percent: 100 }] });
  });

  it('adds the new version to a split that does not name it, and picks the highest version on a tie', () => {
    expect(planRollout('flowers', ['1', '2', '3'], split({ 1: 50, 2: 50 }), '3', [100])).toMatchObject({ stable: '2', steps: [{ split: split({ 1: 0, 2: 0, 3: 100 }) }] });
  });

  it('refuses a version that does not exist or already has everything', () => {
    expect(planRollout('flowers', ['1', '2'], split({ 1: 100 }), '4', [100])).toBe("flowers: no version '4' (versions: 1, 2)");
    expect(planRollout('flowers', ['1', '2'], split({ 1: 0, 2: 100 }), '2', [100])).toBe('flowers: version 2 already serves all of its traffic; nothing to roll out');
  });
});

describe('the analysis of a step', () => {
  const options = ROLLOUT_DEFAULTS;

  it('passes a canary as good as the stable version, saying both figures', () => {
    expect(analyseStep(figures('2', 300, 0, 4.2), figures('1', 2700, 0, 4), undefined, options)).toEqual({
      verdict: 'pass',
      reason: 'version 2 300 requests, 0% errors, p99 4.2 ms; version 1 2700 requests, 0% errors, p99 4 ms',
    });
  });

  it('fails an error rate more than --max-error-rate points above the stable one\'s', () => {
    expect(analyseStep(figures('2', 200, 50, 3), figures('1', 1800, 18, 4), undefined, options)).toEqual({
      verdict: 'fail',
      reason: 'error rate: version 2 25% (50 of 200 requests) against 1% for version 1 (18 of 1800), more than --max-error-rate 1 point above',
    });
    // One stray error in 100 is 1 point: not more than 1.
    expect(analyseStep(figures('2', 100, 1, 3), figures('1', 900, 0, 3), undefined, options).verdict).toBe('pass');
    expect(analyseStep(figures('2', 100, 2, 3), figures('1', 900, 0, 3), undefined, options).verdict).toBe('fail');
    // A stable version failing as much is no regression of the new one.
    expect(analyseStep(figures('2', 100, 30, 3), figures('1', 900, 261, 3), undefined, options).verdict).toBe('pass');
    expect(analyseStep(figures('2', 100, 5, 3), figures('1', 900, 0, 3), undefined, { ...options, maxErrorRate: 5 }).verdict).toBe('pass');
  });

  it('fails a p99 above both --max-p99-ratio times the stable one\'s and the stable one\'s plus --p99-slack', () => {
    expect(analyseStep(figures('2', 300, 0, 160), figures('1', 2700, 0, 100), undefined, options)).toEqual({
      verdict: 'fail',
      reason: 'p99 latency: version 2 160 ms against 100 ms for version 1, above 150 ms (the larger of --max-p99-ratio 1.5 times it and it plus --p99-slack 50 ms)',
    });
    expect(analyseStep(figures('2', 300, 0, 60), figures('1', 2700, 0, 4), undefined, options).reason).toBe(
      'p99 latency: version 2 60 ms against 4 ms for version 1, above 54 ms (the larger of --max-p99-ratio 1.5 times it and it plus --p99-slack 50 ms)',
    );
    // 10x a 2 ms p99 is within the slack: a pause on a fast model, not a regression.
    expect(analyseStep(figures('2', 300, 0, 20), figures('1', 2700, 0, 2), undefined, options).verdict).toBe('pass');
    expect(analyseStep(figures('2', 300, 0, 6), figures('1', 2700, 0, 2), undefined, { ...options, p99SlackMs: 0 }).verdict).toBe('fail');
    expect(analyseStep(figures('2', 300, 0, 160), figures('1', 2700, 0, 100), undefined, { ...options, maxP99Ratio: 2 }).verdict).toBe('pass');
  });

  it('never passes too little canary traffic: it waits, saying how much there was', () => {
    expect(analyseStep(figures('2', 99, 99, 1000), figures('1', 900, 0, 3), undefined, options)).toEqual({
      verdict: 'wait',
      reason: 'version 2 answered 99 requests, fewer than --min-requests 100',
    });
    expect(analyseStep(figures('2', 0, 0, null), figures('1', 0, 0, null), undefined, options).verdict).toBe('wait');
    expect(analyseStep(figures('2', 20, 0, 3), figures('1', 180, 0, 3), undefined, { ...options, minRequests: 20 }).verdict).toBe('pass');
  });

  it('compares with the stable version\'s figures at an earlier step when it has no traffic now (the last step)', () => {
    const earlier = figures('1', 1500, 0, 4);
    expect(analyseStep(figures('2', 3000, 0, 4.5), figures('1', 0, 0, null), earlier, options)).toEqual({
      verdict: 'pass',
      reason: 'version 2 3000 requests, 0% errors, p99 4.5 ms; version 1 1500 requests, 0% errors, p99 4 ms at an earlier step (now 0 requests)',
    });
    expect(analyseStep(figures('2', 3000, 0, 200), figures('1', 0, 0, null), earlier, options).reason).toMatch(/^p99 latency: version 2 200 ms against 4 ms for version 1/);
  });

  it('holds the error rate against 0 and leaves the p99 unjudged when the stable version never had traffic to compare with', () => {
    expect(analyseStep(figures('2', 300, 0, 500), figures('1', 3, 0, 2), undefined, options)).toEqual({
      verdict: 'pass',
      reason: 'version 2 300 requests, 0% errors, p99 500 ms; version 1 had too little traffic to compare with (3 requests)',
    });
    expect(analyseStep(figures('2', 300, 6, 5), figures('1', 0, 0, null), undefined, options)).toEqual({
      verdict: 'fail',
      reason: 'error rate: version 2 2% (6 of 300 requests) against 0% for version 1 (no traffic to compare with: held against 0), more than --max-error-rate 1 point above',
    });
  });
});
