import type { NamedTensors } from '@moerl/core';
import { type CollectedRollouts, collectStepRollouts, type StepContext } from './step-pipeline.js';

/**
 * Where each step's rollouts come from, and when the engine takes new weights.
 * - `ahead: 0` (synchronous): a step samples its batch when it asks, with the weights it trains.
 * - `ahead: 1` (rollout.async 1, one step off-policy as AReaL and slime run it): when step N takes its batch,
 *   the engine starts sampling step N + 1's with the weights it holds (version N − 1) while the trainer
 *   trains N. New weights reach the engine only once that batch is done, never in the middle of one. With
 *   `updateInBackground` (an engine in a worker thread or another process) the step does not wait for the
 *   engine to take them: it converts them while the trainer trains the next step, and the next batch and
 *   any evaluation start after the update.
 * - With `ordersCalls` (an engine in a worker thread, which answers calls one at a time in the order made)
 *   the next batch is asked for right after the update, not once the trainer's thread hears the update is
 *   done: that thread is busy training and would hear it only after the step, so sampling would wait for
 *   training (measured: the two phases ran one after the other).
 */
export class RolloutPipeline {
  private readonly ahead: number;
  private readonly lastStep: number;
  private readonly updateInBackground: boolean;
  private readonly ordersCalls: boolean;
  private prefetched: Promise<CollectedRollouts> | undefined;
  private engineWeights: NamedTensors;
  private previousWeights: NamedTensors | undefined;
  /** The engine's last weight update, which the next batch (and any other engine use) waits for. */
  private updating: Promise<void> = Promise.resolve();

  constructor(
    private readonly context: StepContext,
    options: {
      readonly ahead: number;
      readonly lastStep: number;
      /** The weights the engine holds now. */
      readonly engineWeights: NamedTensors;
      /** When running ahead, let the engine take new weights while the caller goes on. */
      readonly updateInBackground?: boolean;
      /**
       * The engine runs calls one at a time in the order they were made: a batch asked for after an update
       * is sampled with its weights.
       */
      readonly ordersCalls?: boolean;
    },
  ) {
    this.ahead = options.ahead;
    this.updateInBackground = options.updateInBackground === true;
    this.ordersCalls = options.ordersCalls === true;
    this.lastStep = options.lastStep;
    this.engineWeights = options.engineWeights;
  }

  /**
   * Resuming an `ahead` run whose engine holds the checkpoint's rollout policy (version `step` − 1): samples
   * step `step` + 1's batch with it, as the uninterrupted run did, then gives the engine `trainerWeights`.
   */
  async resume(step: number, trainerWeights: NamedTensors): Promise<void> {
    this.prefetched = collectStepRollouts(this.context, step + 1);
    await this.prefetched;
    await this.publish(trainerWeights, step);
  }

  /** Step `step`'s batch, and how long the step waited for it; starts the next one when running ahead. */
  async take(step: number): Promise<{ collected: CollectedRollouts; waitSeconds: number }> {
    const start = performance.now();
    const collected = await (this.prefetched ?? this.collectAfterUpdate(step));
    const waitSeconds = (performance.now() - start) / 1000;
    this.prefetched = this.ahead > 0 && step < this.lastStep ? this.collectAfterUpdate(step + 1) : undefined;
    // Its failure surfaces where it is awaited, not as an unhandled rejection while the trainer works.
    this.prefetched?.catch(() => undefined);
    return { collected, waitSeconds };
  }

  /** Step `step`'s batch, sampled with the last published weights; rejects if their update failed. */
  private async collectAfterUpdate(step: number): Promise<CollectedRollouts> {
    if (!this.ordersCalls) {
      await this.ready();
      return collectStepRollouts(this.context, step);
    }
    // Asked for now, sampled after the update by the engine's own ordering. A failed update fails the batch
    // (its error is the one reported), once the batch is over: nothing is left running on the engine.
    const [update, batch] = await Promise.allSettled([this.ready(), collectStepRollouts(this.context, step)]);
    if (update.status === 'rejected') throw update.reason;
    if (batch.status === 'rejected') throw batch.reason;
    return batch.value;
  }

  /**
   * Gives the engine the weights of `version`, once no batch is being sampled. Waits for the update unless
   * running ahead with `updateInBackground`; then the update proceeds while the caller goes on, and `ready`
   * waits for it.
   */
  async publish(weights: NamedTensors, version: number): Promise<void> {
    await this.drain();
    this.previousWeights = this.ahead > 0 ? this.engineWeights : undefined;
    this.updating = this.context.engine.updateWeights(weights, version);
    this.engineWeights = weights;
    // A failed update surfaces where the engine is next used (`ready`, the next batch).
    this.updating.catch(() => undefined);
    if (this.ahead === 0 || !this.updateInBackground) await this.updating;
  }

  /** Waits until the engine holds the last published weights; rejects if that update failed. */
  ready(): Promise<void> {
    return this.updating;
  }

  /**
   * What a checkpoint must keep to resume exactly: when running ahead, the policy the next batch was
   * sampled with (one version behind the engine's).
   */
  rolloutPolicy(): NamedTensors | undefined {
    return this.previousWeights;
  }

  /**
   * Waits for a batch still being sampled and a weight update (before the engine goes away), ignoring their
   * outcome.
   */
  async drain(): Promise<void> {
    await this.prefetched?.catch(() => undefined);
    await this.updating.catch(() => undefined);
  }
}
