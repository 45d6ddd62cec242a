/**
 * BENCHMARKS.md is written by `npm run bench`; its reading of the figures has one source,
 * bench/ANALYSIS.md, which the run pastes in. A hand edit of either side alone fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_FILE, BENCHMARKS_FILE, pastedAnalysis, withAnalysis } from '../bench/analysis.ts';
import { parseWrk } from '../bench/wrk.ts';

describe('BENCHMARKS.md', () => {
  const benchmarks = readFileSync(BENCHMARKS_FILE, 'utf8');

  it('holds bench/ANALYSIS.md as it is, the text the next run pastes in', () => {
    const pasted = pastedAnalysis(benchmarks);
    expect(pasted, 'BENCHMARKS.md has no analysis section between its markers').toBeDefined();
    expect(pasted, 'BENCHMARKS.md differs from bench/ANALYSIS.md: edit bench/ANALYSIS.md, then npm run bench:analysis').toBe(readFileSync(ANALYSIS_FILE, 'utf8').trim());
    // Pasting again changes nothing: the file is what npm run bench:analysis writes.
    expect(withAnalysis(benchmarks)).toBe(benchmarks);
  });

  it('says which part is generated and where the reading is edited', () => {
    expect(benchmarks.split('\n').slice(0, 4).join('\n')).toMatch(/Written by `npm run bench`[\s\S]*pasted from bench\/ANALYSIS.md: edit it there, then `npm run bench:analysis`/);
  });
});

describe("wrk's report as the benchmarks and the soak read it", () => {
  it('counts non-2xx answers and socket errors, and says which they were', () => {
    const report = '  101460 requests in 25.00s, 30.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 0\n  Non-2xx or 3xx responses: 9\nRequests/sec:   4058.40\n';
    expect(parseWrk(report)).toMatchObject({ requests: 101460, errors: 11, errorKinds: 'non-2xx 9, socket read 2', rps: 4058.4 });
    expect(parseWrk('  10 requests in 1.00s, 1.00KB read\nRequests/sec:     10.00\n')).toMatchObject({ errors: 0, errorKinds: '' });
  });

  it('names the statuses where the run counted them (the soak does)', () => {
    const report = '  5000 requests in 1.00s, 1.00MB read\n  Non-2xx or 3xx responses: 7\nRequests/sec:   5000.00\nstatus 429: 5\nstatus 502: 2\n';
    expect(parseWrk(report).errorKinds).toBe('non-2xx 7 (429 x5, 502 x2)');
  });
});
