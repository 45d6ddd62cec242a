/**
 * The reading of the benchmark figures: written by hand in bench/ANALYSIS.md, one source, and
 * pasted into BENCHMARKS.md between two markers by `npm run bench` and by `npm run bench:analysis`
 * (which re-pastes it alone, without measuring). test/benchmarks.test.ts fails when they differ.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
export const ANALYSIS_FILE = join(ROOT, 'bench/ANALYSIS.md');
export const BENCHMARKS_FILE = join(ROOT, 'BENCHMARKS.md');
const START = '<!-- bench:analysis (from bench/ANALYSIS.md: edit it there, then npm run bench:analysis) -->';
const END = '<!-- /bench:analysis -->';

/** The section as BENCHMARKS.md holds it: bench/ANALYSIS.md between the markers. */
export function analysisSection(analysis = existsSync(ANALYSIS_FILE) ? readFileSync(ANALYSIS_FILE, 'utf8') : ''): string {
  return `${START}\n${analysis.trim()}\n${END}`;
}

/** What BENCHMARKS.md holds between the markers, or undefined when it has no such section. */
export function pastedAnalysis(benchmarks: string): string | undefined {
  const start = benchmarks.indexOf(START);
  const end = benchmarks.indexOf(END);
  return start >= 0 && end > start ? benchmarks.slice(start + START.length, end).trim() : undefined;
}

/** `benchmarks` with its analysis section replaced by `section` (appended when it has none). */
export function withAnalysis(benchmarks: string, section = analysisSection()): string {
  const start = benchmarks.indexOf(START);
  const end = benchmarks.indexOf(END);
  return start >= 0 && end > start
    ? `${benchmarks.slice(0, start)}${section}${benchmarks.slice(end + END.length)}`
    : `${benchmarks.trimEnd()}\n\n${section}\n`;
}

const isMain = process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename);
if (isMain) {
  writeFileSync(BENCHMARKS_FILE, withAnalysis(readFileSync(BENCHMARKS_FILE, 'utf8')));
  process.stdout.write('pasted bench/ANALYSIS.md into BENCHMARKS.md\n');
}
