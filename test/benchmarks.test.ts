/**
 * BENCHMARKS.md is written by `npm run bench`; its reading of the figures has one source,
 * bench/ANALYSIS.md, which the run pastes in. A hand edit of either side alone fails here.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_FILE, BENCHMARKS_FILE, pastedAnalysis, withAnalysis } from '../bench/analysis.ts';

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
