/** The finite numbers of `values` (undefined, NaN and ±Infinity left out): metrics rows carry NaN for "not measured". */
export function finiteValues(values: readonly (number | undefined)[]): number[] {
  return values.filter((value): value is number => value !== undefined && Number.isFinite(value));
}

/** Mean of the finite values; NaN when there are none. */
export function finiteMean(values: readonly (number | undefined)[]): number {
  const kept = finiteValues(values);
  return kept.length === 0 ? Number.NaN : kept.reduce((sum, value) => sum + value, 0) / kept.length;
}

/** Largest finite value; NaN when there are none. */
export function finiteMax(values: readonly (number | undefined)[]): number {
  const kept = finiteValues(values);
  return kept.length === 0 ? Number.NaN : Math.max(...kept);
}
