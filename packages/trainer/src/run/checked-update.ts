import { assertFiniteTensors, MoerlError, type NamedTensors, type PolicyTrainer } from '@moerl/core';

export interface CheckedUpdate {
  /** The weights to hand on (engine, checkpoint): the updated ones, or those from before the step. */
  readonly weights: NamedTensors;
  /** Why the update was undone, when it was. */
  readonly rolledBack?: string;
}

/**
 * Checks an RL step's update before it is committed: when it left a weight NaN or ±Infinity (a diverging
 * step), the trainer goes back to `before` and the step counts as skipped, so neither the engine nor a
 * checkpoint ever sees the broken weights.
 */
export async function checkUpdate(trainer: PolicyTrainer, before: NamedTensors): Promise<CheckedUpdate> {
  const after = await trainer.exportWeights();
  try {
    assertFiniteTensors(after, 'the updated weights');
    return { weights: after };
  } catch (error) {
    if (!MoerlError.isInstance(error, 'NON_FINITE')) throw error;
    await trainer.loadWeights(before);
    return { weights: before, rolledBack: error.message };
  }
}

/** The error of a run in which no step changed the weights. */
export function allStepsSkippedError(steps: number, skippedSteps: number): MoerlError {
  return new MoerlError(
    'NON_FINITE',
    `every one of the ${steps} RL step(s) was skipped (non-finite loss, gradient or updated weights; ${skippedSteps} update(s) skipped): the policy never changed; lower train.learningRate or check the objective and rewards`,
    { details: { steps, skippedSteps } },
  );
}
