import { listObjectives, registerObjective } from '@moerl/algos';
import { createCispoObjective } from './cispo-objective.js';

/** The name the objective is registered under: `objective: 'example-cispo'` in a trainer config. */
export const CISPO_OBJECTIVE_NAME = 'example-cispo';

/** Registers `example-cispo` with the package-wide objective registry of @moerl/algos; a second call does nothing. */
export function registerCispo(): void {
  if (listObjectives().includes(CISPO_OBJECTIVE_NAME)) return;
  registerObjective(CISPO_OBJECTIVE_NAME, createCispoObjective);
}
