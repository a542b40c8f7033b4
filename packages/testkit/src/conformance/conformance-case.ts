import { MoerlError, type MoerlErrorCode } from '@moerl/core';

/**
 * One conformance check, runner-neutral: a plain async function plus the capabilities it needs. The vitest
 * adapter (`@moerl/testkit/vitest`) turns a list of cases into `describe`/`it`; jest or node:test users can
 * loop over the same list.
 */
export interface ConformanceCase<Subject, Capability extends string = string> {
  readonly name: string;
  /** Capabilities the subject must claim; otherwise the case is skipped with these names. */
  readonly requires: readonly Capability[];
  run(subject: Subject): Promise<void>;
}

/** Thrown when a conformance check fails; the message says what was expected and what was found. */
export class ConformanceError extends Error {
  override readonly name = 'ConformanceError';
}

export function check(condition: unknown, message: () => string): asserts condition {
  if (!condition) throw new ConformanceError(message());
}

/** Largest absolute difference between two equally long arrays; throws when lengths differ. */
export function maxAbsDifference(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  label: string,
): number {
  check(
    actual.length === expected.length,
    () => `${label}: expected ${expected.length} values, found ${actual.length}`,
  );
  let worst = 0;
  for (let index = 0; index < actual.length; index++) {
    const difference = Math.abs(actual[index]! - expected[index]!);
    // NaN compares false, so treat it as an infinite difference.
    worst = Number.isNaN(difference) ? Number.POSITIVE_INFINITY : Math.max(worst, difference);
  }
  return worst;
}

export function checkClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number,
  label: string,
): void {
  const worst = maxAbsDifference(actual, expected, label);
  check(
    worst <= tolerance,
    () => `${label}: max |difference| ${worst.toExponential(3)} exceeds ${tolerance}`,
  );
}

/**
 * The MoerlError code `action` throws synchronously, `undefined` when it returns, or a
 * "not a MoerlError: …" string for any other error, so a test can compare codes with one `expect`.
 */
export function moerlErrorCodeOf(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    return MoerlError.isInstance(error) ? error.code : `not a MoerlError: ${String(error)}`;
  }
  return undefined;
}

/** Expects `run` to reject with a MoerlError of `code`. */
export async function checkRejects(
  run: () => Promise<unknown>,
  code: MoerlErrorCode,
  label: string,
): Promise<void> {
  let outcome: unknown;
  try {
    await run();
    outcome = 'no error';
  } catch (error) {
    if (MoerlError.isInstance(error, code)) return;
    outcome = MoerlError.isInstance(error) ? `MoerlError ${error.code}: ${error.message}` : String(error);
  }
  throw new ConformanceError(`${label}: expected a MoerlError with code ${code}, found ${String(outcome)}`);
}

/** The cases a subject with `capabilities` runs, and the ones it skips with the capabilities it lacks. */
export function partitionCases<Subject, Capability extends string>(
  cases: readonly ConformanceCase<Subject, Capability>[],
  capabilities: Readonly<Partial<Record<Capability, unknown>>>,
): {
  run: ConformanceCase<Subject, Capability>[];
  skip: Array<{ case: ConformanceCase<Subject, Capability>; missing: Capability[] }>;
} {
  const run: ConformanceCase<Subject, Capability>[] = [];
  const skip: Array<{ case: ConformanceCase<Subject, Capability>; missing: Capability[] }> = [];
  for (const entry of cases) {
    const missing = entry.requires.filter((capability) => capabilities[capability] !== true);
    if (missing.length === 0) run.push(entry);
    else skip.push({ case: entry, missing });
  }
  return { run, skip };
}
