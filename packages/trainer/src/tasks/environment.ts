import type { FinishReason } from '@moerl/core';
import type { TaskExample } from './task.js';

/** What an environment answers after a model turn. */
export interface EnvironmentTurn {
  /**
   * Text fed back to the model before its next turn (a tool result, an observation): tokens it did not
   * sample, kept out of the loss. Required unless `done`.
   */
  readonly observation?: string;
  /** True when the episode is over. */
  readonly done: boolean;
  /** The episode's reward in [0, 1], read when `done` (absent: 0). */
  readonly reward?: number;
  /** Whether the episode solved its problem (what `accuracy` counts), read when `done`. */
  readonly correct?: boolean;
  /** True when the model's turn was a tool call that this observation answers (counted per episode in `toolCallsPerEpisode`). */
  readonly toolCall?: boolean;
}

/**
 * A multi-turn environment in the style RL users know from gym, verifiers and SkyRL-gym: `reset` starts an
 * episode for one problem, `step` answers each model turn. The task's prompt opens the conversation; each
 * model turn ends with `<eos>` (or the per-turn token limit), the observation follows, and the model speaks
 * again, up to `maxTurns` turns. A single-turn task is an environment with one turn.
 */
export interface Environment<State = unknown> {
  readonly name: string;
  /** Model turns at most; a conversation still open after the last one ends with reward 0. */
  readonly maxTurns: number;
  /** Longest observation, in tokens; a longer one is an environment error. */
  readonly maxObservationTokens: number;
  reset(example: TaskExample): State;
  /**
   * A conversation for the warm start to imitate on `example`: the model's turns, and the observation after
   * each turn but the last (`observations.length === turns.length − 1`). The warm start trains on the turns
   * only. Without it the warm start trains on the task's single-turn answer.
   */
  demonstrate?(example: TaskExample): {
    readonly turns: readonly string[];
    readonly observations: readonly string[];
  };
  /** Called after every model turn with its text (decoded, without `<eos>`). */
  step(
    state: State,
    turn: string,
    info: { readonly turn: number; readonly finishReason: FinishReason },
  ): EnvironmentTurn;
}
