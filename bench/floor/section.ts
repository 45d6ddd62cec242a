/**
 * The floor benchmark's section of BENCHMARKS.md: bench/floor.ts pastes its report between two
 * markers, and bench/run.ts, which writes the rest of the file anew, carries the section over.
 */
const START = '<!-- bench:floor (written by npm run bench:floor) -->';
const END = '<!-- /bench:floor -->';

/** The section as BENCHMARKS.md holds it. */
export const floorSection = (report: string): string => `${START}\n${report.trim()}\n${END}`;

/** The section BENCHMARKS.md holds now (markers included), if any. */
export function currentFloorSection(benchmarks: string): string | undefined {
  const start = benchmarks.indexOf(START);
  const end = benchmarks.indexOf(END);
  return start >= 0 && end > start ? benchmarks.slice(start, end + END.length) : undefined;
}

/** `benchmarks` with its floor section replaced by `section` (appended when it has none). */
export function withFloorSection(benchmarks: string, section: string): string {
  const start = benchmarks.indexOf(START);
  const end = benchmarks.indexOf(END);
  return start >= 0 && end > start
    ? `${benchmarks.slice(0, start)}${section}${benchmarks.slice(end + END.length)}`
    : `${benchmarks.trimEnd()}\n\n${section}\n`;
}
