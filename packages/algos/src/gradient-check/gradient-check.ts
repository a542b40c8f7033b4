import { MoerlError, type Objective, type ObjectiveInput } from '@moerl/core';
import { checkFinite, type NumberArray } from '../validation/checks.js';

/**
 * Finite-difference checks for objectives, exported so that packages adding an objective through
 * `registerObjective` can test their gradient the way the built-ins are tested. Runner-neutral: they return a
 * report (and `assertGradientMatches` throws), so they work under vitest, node:test or anything else.
 */

export interface GradientComparison {
  /** True when every entry is within tolerance. */
  readonly ok: boolean;
  /** Largest |analytic − numeric| / (1 + |numeric|) over all entries. */
  readonly maxError: number;
  /** Index of that entry, −1 for empty arrays. */
  readonly worstIndex: number;
  readonly tolerance: number;
  /** One line naming the worst entry, for test failure messages. */
  readonly message: string;
}

export interface ObjectiveGradientCheck extends GradientComparison {
  /** `objective.evaluate(input).gradient`, as float64. */
  readonly analytic: Float64Array;
  /** Central differences of the loss with respect to each logprob. */
  readonly numeric: Float64Array;
}

export interface ObjectiveGradientCheckOptions {
  /**
   * The loss as a function of the logprobs. Default: `objective.evaluate({ ...input, logprobs }).loss`.
   * Objectives with stop-gradient factors (clipped importance weights, GSPO-token's sequence ratio) pass a
   * function that holds those factors at `input.logprobs`, as autograd would; otherwise the differences also
   * see the detached factors move.
   */
  readonly loss?: (logprobs: Float32Array) => number;
  /** Half-width of the central difference. Default 1e-3 (logprobs are float32). */
  readonly step?: number;
  /** Accepted |analytic − numeric| / (1 + |numeric|). Default 1e-4. */
  readonly tolerance?: number;
}

function checkPositive(field: string, value: number): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new MoerlError('INVALID_ARGUMENT', `${field} must be a positive finite number, found ${value}`, {
      details: { field, found: value },
    });
  }
  return value;
}

/**
 * Central differences (f(x + h·e_t) − f(x − h·e_t)) / 2h of a scalar function for every coordinate of `at`,
 * in float64. `f` receives one scratch array, changed in place between calls: read it, do not keep it.
 */
export function finiteDifferenceGradient(
  f: (x: Float64Array) => number,
  at: NumberArray,
  step = 1e-6,
): Float64Array {
  checkPositive('step', step);
  checkFinite('at', at);
  const probe = Float64Array.from(at);
  const out = new Float64Array(probe.length);
  for (let t = 0; t < probe.length; t++) {
    const x = probe[t]!;
    probe[t] = x + step;
    const plus = f(probe);
    probe[t] = x - step;
    const minus = f(probe);
    probe[t] = x;
    out[t] = (plus - minus) / (2 * step);
  }
  return out;
}

/** Compares two gradients entry by entry with the error |a − n| / (1 + |n|). */
export function compareGradients(
  analytic: NumberArray,
  numeric: NumberArray,
  tolerance = 1e-5,
): GradientComparison {
  checkPositive('tolerance', tolerance);
  if (analytic.length !== numeric.length) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `analytic must hold one value per numeric entry (${numeric.length}), found ${analytic.length} values`,
      { details: { field: 'analytic', expected: numeric.length, found: analytic.length } },
    );
  }
  let maxError = 0;
  let worstIndex = analytic.length === 0 ? -1 : 0;
  for (let index = 0; index < analytic.length; index++) {
    const a = analytic[index]!;
    const n = numeric[index]!;
    // NaN on either side is the worst possible entry.
    const error =
      Number.isNaN(a) || Number.isNaN(n) ? Number.POSITIVE_INFINITY : Math.abs(a - n) / (1 + Math.abs(n));
    if (error > maxError) {
      maxError = error;
      worstIndex = index;
    }
  }
  const ok = maxError <= tolerance;
  const message =
    worstIndex < 0
      ? 'no entries to compare'
      : `gradient[${worstIndex}]: analytic ${analytic[worstIndex]} vs finite differences ${numeric[worstIndex]} (error ${maxError.toExponential(2)}, tolerance ${tolerance})`;
  return { ok, maxError, worstIndex, tolerance, message };
}

/**
 * Checks an objective's `gradient` against central differences of its loss at `input.logprobs`. The probes
 * are float32 (what `evaluate` receives), so the divisor is the distance between the rounded probes.
 */
export function checkObjectiveGradient(
  objective: Objective,
  input: ObjectiveInput,
  options: ObjectiveGradientCheckOptions = {},
): ObjectiveGradientCheck {
  const step = checkPositive('step', options.step ?? 1e-3);
  const tolerance = options.tolerance ?? 1e-4;
  const loss = options.loss ?? ((logprobs: Float32Array) => objective.evaluate({ ...input, logprobs }).loss);
  const result = objective.evaluate(input);
  const analytic = Float64Array.from(result.gradient);
  const probe = Float32Array.from(input.logprobs);
  const numeric = new Float64Array(probe.length);
  for (let t = 0; t < probe.length; t++) {
    const x = probe[t]!;
    probe[t] = x + step;
    const high = probe[t]!;
    const plus = loss(probe);
    probe[t] = x - step;
    const low = probe[t]!;
    const minus = loss(probe);
    probe[t] = x;
    numeric[t] = (plus - minus) / (high - low);
  }
  return { ...compareGradients(analytic, numeric, tolerance), analytic, numeric };
}

/** Throws `INVALID_ARGUMENT` with the comparison's message unless it passed. */
export function assertGradientMatches(comparison: GradientComparison, what = 'gradient'): void {
  if (!comparison.ok) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `${what} differs from finite differences: ${comparison.message}`,
      {
        details: { field: what, maxError: comparison.maxError, worstIndex: comparison.worstIndex },
      },
    );
  }
}
