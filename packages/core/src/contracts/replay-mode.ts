/**
 * How the trainer routes tokens to experts in a training forward pass:
 * - `free`: the trainer's own router chooses (the baseline that collapses on MoE models);
 * - `R2`: routing the trainer recorded while computing old logprobs is replayed in the update steps;
 * - `R3`: routing the inference engine recorded during rollout is replayed in every training pass.
 */
export type ReplayMode = 'free' | 'R2' | 'R3';

export const REPLAY_MODES: readonly ReplayMode[] = ['free', 'R2', 'R3'];

/** Per forward pass: let the router choose, or replay the RoutingRecord each sequence carries. */
export type RoutingMode = 'free' | 'replay';
