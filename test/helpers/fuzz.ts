/**
 * Shared settings of the property-based fuzz suites (fast-check) under test/fuzz/. `npm test` runs
 * each property with a short default; `npm run fuzz` sets FUZZ_RUNS (100,000) for the long run and
 * FUZZ_SEED to replay one. Each suite reports how many cases it ran, so the figures can be quoted.
 */
import type { Parameters } from "fast-check";

/** Cases per property: FUZZ_RUNS when set (npm run fuzz), else `quick`. */
export function fuzzRuns(quick: number): number {
  const fromEnv = Number(process.env.FUZZ_RUNS);
  return Number.isSafeInteger(fromEnv) && fromEnv > 0 ? fromEnv : quick;
}

/**
 * fast-check parameters: the run count above (with `share`, that part of FUZZ_RUNS: a slower
 * variant of a suite runs fewer cases in the long run), a replayable seed when FUZZ_SEED is set.
 */
export function fuzzParameters<T>(quick: number, share = 1): Parameters<T> {
  const seed = Number(process.env.FUZZ_SEED);
  const long = Number(process.env.FUZZ_RUNS);
  return {
    numRuns:
      Number.isSafeInteger(long) && long > 0 ? Math.max(quick, Math.ceil(long * share)) : quick,
    ...(Number.isSafeInteger(seed) ? { seed } : {}),
    // A failing case is reported with its seed and path, so it can be replayed exactly.
    verbose: 1,
  };
}

/** One line for the run's output: "<suite>: N cases in T s (R/s)". */
export function reportFuzz(suite: string, cases: number, startedAt: number): void {
  const seconds = (performance.now() - startedAt) / 1000;
  process.stdout.write(
    `# fuzz ${suite}: ${cases} cases in ${seconds.toFixed(1)} s (${Math.round(cases / seconds)}/s)\n`,
  );
}
