import { createRandom, type GenerateRequest, type SamplingParams } from '@moerl/core';

/** One `/generate` call: `indices.length` samples of one prompt (n = indices.length), one seed. */
export interface PlannedCall {
  /** Positions in the generate call's request list, in sample order. */
  readonly indices: readonly number[];
  readonly params: SamplingParams;
  /** `sampling_seed` of the call; sample j draws from `createRandom(seed).fork(j)`. */
  readonly seed: number;
  /** A prompt's first request goes alone, so its routing can serve the prompt rows of the rest. */
  readonly leads?: PlannedCall;
}

/** The seed of a call whose first request sits at `index` in a generate call seeded `seed`. */
export function requestSeed(seed: number, index: number): number {
  return createRandom(seed).fork(index).nextUint32();
}

/**
 * Splits a generate call into HTTP calls. Requests with the same prompt and sampling params form a group:
 * its first request is one call (n = 1), the rest one call (n = G − 1). The plan depends only on the
 * requests and params, never on caches or servers, so a seed gives the same tokens every time, and
 * running each planned call in-process (`engine.generate(callRequests, {...params, seed})`) reproduces it.
 */
export function planCalls(
  requests: readonly GenerateRequest[],
  samplingParams: SamplingParams,
): PlannedCall[] {
  const groups = new Map<string, number[]>();
  const paramsOf = requests.map((request) => ({ ...samplingParams, ...request.samplingParams }));
  requests.forEach((request, index) => {
    const key = `${request.promptIds.join(',')}|${JSON.stringify(paramsOf[index])}`;
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [index]);
    else group.push(index);
  });
  const calls: PlannedCall[] = [];
  for (const indices of groups.values()) {
    const first = indices[0]!;
    const params = paramsOf[first]!;
    const leader: PlannedCall = { indices: [first], params, seed: requestSeed(params.seed, first) };
    calls.push(leader);
    if (indices.length > 1) {
      const rest = indices.slice(1);
      calls.push({ indices: rest, params, seed: requestSeed(params.seed, rest[0]!), leads: leader });
    }
  }
  return calls;
}
