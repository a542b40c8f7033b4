import { MoerlError, type RoutingRecord, type TrainingBatch } from '@moerl/core';

/**
 * The batch with `routing[i]` attached to sequence i, ready for `routing: 'replay'`. For R3 the records come
 * from the inference engine (they usually ride on the trajectories already); for R2 they are the records
 * `logprobs(batch, { routing: 'free' })` returned when the old logprobs were computed, before the update
 * steps of the batch.
 */
export function attachRouting(batch: TrainingBatch, routing: readonly RoutingRecord[]): TrainingBatch {
  if (routing.length !== batch.sequences.length) {
    throw new MoerlError(
      'ROUTING_SHAPE',
      `attachRouting: ${batch.sequences.length} sequences need ${batch.sequences.length} routing records, found ${routing.length}`,
      { details: { field: 'routing', expected: batch.sequences.length, found: routing.length } },
    );
  }
  return { sequences: batch.sequences.map((sequence, index) => ({ ...sequence, routing: routing[index]! })) };
}
