import { checkValues, type NumberArray } from '../validation/checks.js';
import { numberGroups } from './reward-batch.js';

/** Which responses a DAPO dynamic-sampling filter keeps. */
export interface DynamicSamplingResult {
  /** 1 for responses of groups with differing rewards, 0 for the rest. */
  readonly keepResponse: Uint8Array;
  /** Group ids (as given) whose rewards differ: they carry a learning signal. */
  readonly keptGroups: ReadonlyArray<string | number>;
  /** Group ids whose rewards are all equal (a group of one included): their advantages are all 0. */
  readonly droppedGroups: ReadonlyArray<string | number>;
  /** droppedGroups.length / number of groups. */
  readonly droppedGroupFraction: number;
}

/**
 * DAPO dynamic sampling: finds the groups whose responses all got the same reward. GRPO gives them zero
 * advantage, so they only dilute the batch; a trainer drops them and samples more prompts.
 */
export function filterUniformGroups(
  groupIds: ArrayLike<string | number>,
  rewards: NumberArray,
): DynamicSamplingResult {
  checkValues('rewards', rewards, groupIds.length, 'response');
  const { groupOf, groupCount } = numberGroups(groupIds);
  const first = new Float64Array(groupCount).fill(Number.NaN);
  const uniform = new Uint8Array(groupCount).fill(1);
  const names: Array<string | number> = new Array(groupCount);
  for (let i = 0; i < groupIds.length; i++) {
    const g = groupOf[i]!;
    if (Number.isNaN(first[g]!)) {
      first[g] = rewards[i]!;
      names[g] = groupIds[i]!;
    } else if (rewards[i] !== first[g]) uniform[g] = 0;
  }
  const keepResponse = new Uint8Array(groupIds.length);
  for (let i = 0; i < groupIds.length; i++) keepResponse[i] = uniform[groupOf[i]!] === 1 ? 0 : 1;
  const keptGroups: Array<string | number> = [];
  const droppedGroups: Array<string | number> = [];
  for (let g = 0; g < groupCount; g++) (uniform[g] === 1 ? droppedGroups : keptGroups).push(names[g]!);
  return {
    keepResponse,
    keptGroups,
    droppedGroups,
    droppedGroupFraction: groupCount === 0 ? 0 : droppedGroups.length / groupCount,
  };
}
