import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../runtime/testing/index.ts';

describe('npm audit --omit=dev', () => {
  it('reports no high or critical vulnerability in production dependencies', (ctx) => {
    const result = spawnSync('npm', ['audit', '--omit=dev', '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    let report: { metadata?: { vulnerabilities?: Record<string, number> }; error?: { summary?: string } } = {};
    try {
      report = JSON.parse(result.stdout || '{}');
    } catch {
      // not JSON: handled below
    }
    const counts = report.metadata?.vulnerabilities;
    if (!counts) {
      // The advisory endpoint is a separate service from the package registry; some mirrors
      // (this project's build machines among them) answer 405. The runner reports the test as
      // skipped, with the reason, rather than counting it as passed.
      const why = report.error?.summary || (result.stderr ?? '').split('\n').find((l) => /audit/i.test(l) && !/Unknown/.test(l)) || `exit ${result.status}`;
      return ctx.skip(`npm audit: the registry's advisory endpoint did not answer (${why.slice(0, 160)})`);
    }
    expect({ high: counts.high, critical: counts.critical }).toEqual({ high: 0, critical: 0 });
  });
});
