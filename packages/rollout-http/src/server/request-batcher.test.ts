import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  type SamplingParams,
  type Trajectory,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceRolloutEngine,
  smallMoeConfig,
  tinyMoeConfig,
} from '@moerl/testkit';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RequestBatcher } from './request-batcher.js';

const config = tinyMoeConfig;
const weights = createRandomWeights(config, 3);

const params = (overrides: Partial<SamplingParams> = {}): SamplingParams => ({
  ...DEFAULT_SAMPLING_PARAMS,
  temperature: 1,
  maxNewTokens: 5,
  seed: 7,
  ...overrides,
});

const request = (id: string, ...promptIds: number[]): GenerateRequest => ({
  id,
  groupId: `g-${id}`,
  promptIds: Int32Array.from(promptIds),
});

interface Call {
  readonly requests: readonly GenerateRequest[];
  readonly params: SamplingParams;
}

/** Calls that differ in seed, temperature, length and per-request overrides, with ids repeated across calls. */
const calls: readonly Call[] = [
  { requests: [request('a', 1, 2, 3), request('b', 4, 5)], params: params() },
  { requests: [request('a', 1, 2, 3)], params: params({ seed: 8, maxNewTokens: 3 }) },
  {
    requests: [
      request('c', 9, 9, 9, 9, 9, 9, 9),
      { ...request('d', 2), samplingParams: { seed: 100, temperature: 0.5 } },
      request('e', 30, 1),
    ],
    params: params({ temperature: 0.7, topK: 5 }),
  },
  { requests: [request('f', 6, 7, 8, 9, 10)], params: params({ seed: 7, maxNewTokens: 6, topP: 0.9 }) },
];

/** An engine wrapper that records every generate call and can hold the next one until released. */
function instrument(engine: RolloutEngine, capabilities = engine.capabilities) {
  const seen: Array<{ requests: readonly GenerateRequest[]; params: SamplingParams }> = [];
  let gate: Promise<void> | undefined;
  let inFlight = 0;
  let mostInFlight = 0;
  const wrapped: RolloutEngine = {
    ...engine,
    capabilities,
    async generate(requests, samplingParams) {
      seen.push({ requests, params: samplingParams });
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      try {
        if (gate !== undefined) await gate;
        return await engine.generate(requests, samplingParams);
      } finally {
        inFlight--;
      }
    },
  };
  return {
    engine: wrapped,
    seen,
    mostInFlight: () => mostInFlight,
    /** Holds generate calls until the returned function is called. */
    hold(): () => void {
      let release = () => {};
      gate = new Promise((resolve) => {
        release = () => {
          gate = undefined;
          resolve();
        };
      });
      return release;
    },
  };
}

/** What each call gives on its own, one engine call per call, on a fresh engine. */
async function separately(create: () => Promise<RolloutEngine>, list: readonly Call[]) {
  const engine = await create();
  const results: Trajectory[][] = [];
  for (const call of list) results.push(await engine.generate(call.requests, call.params));
  await engine.dispose();
  return results;
}

const referenceEngine = async () => createReferenceRolloutEngine({ config, weights });

/** Resolves after pending microtasks and I/O callbacks, so a held engine call has surely started. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('RequestBatcher', () => {
  it('merges calls that wait while the engine is busy into one engine call, samples unchanged', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
    const release = probe.hold();
    const first = batcher.run(calls[0]!.requests, calls[0]!.params);
    await settle();
    const rest = calls.slice(1).map((call) => batcher.run(call.requests, call.params));
    expect(batcher.pending).toBe(calls.length);
    release();
    const results = [await first, ...(await Promise.all(rest))];

    expect(probe.seen.map((call) => call.requests.length)).toEqual([2, 5]);
    // The merged call's ids are unique although two calls both use 'a'.
    const mergedIds = probe.seen[1]!.requests.map((entry) => entry.id);
    expect(new Set(mergedIds).size).toBe(mergedIds.length);
    expect(probe.seen[1]!.requests.map((entry) => entry.seedFork)).toEqual([0, 0, 1, 2, 0]);
    expect(results).toEqual(await separately(referenceEngine, calls));
    expect(batcher.pending).toBe(0);
  });

  it('merges calls made in the same turn into the first engine call', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
    const results = await Promise.all(calls.map((call) => batcher.run(call.requests, call.params)));
    expect(probe.seen).toHaveLength(1);
    expect(results).toEqual(await separately(referenceEngine, calls));
  });

  it('any split of any calls gives what each call gives on its own (reference engine)', async () => {
    const expected = await separately(referenceEngine, calls);
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray([0, 1, 2, 3], { minLength: 1 }),
        fc.integer({ min: 1, max: 6 }),
        async (order, maxBatchRequests) => {
          const probe = instrument(createReferenceRolloutEngine({ config, weights }));
          const batcher = new RequestBatcher(probe.engine, { maxPending: 8, maxBatchRequests });
          const results = await Promise.all(
            order.map((index) => batcher.run(calls[index]!.requests, calls[index]!.params)),
          );
          results.forEach((result, position) => {
            expect(result).toEqual(expected[order[position]!]);
          });
          // No engine call exceeds the bound unless a single call is larger than it.
          for (const seen of probe.seen) {
            const single = order.some((index) => calls[index]!.requests === seen.requests);
            expect(single || seen.requests.length <= maxBatchRequests).toBe(true);
          }
        },
      ),
      { numRuns: 20 },
    );
  });

  it('keeps merged batches within maxBatchRequests, in arrival order; a larger call runs on its own', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16, maxBatchRequests: 3 });
    const sized = (size: number, id: string): Call => ({
      requests: Array.from({ length: size }, (_, index) => request(`${id}${index}`, index + 1, 2)),
      params: params({ maxNewTokens: 2 }),
    });
    const list = [sized(1, 'h'), sized(1, 'i'), sized(1, 'j'), sized(1, 'k'), sized(2, 'l'), sized(4, 'm')];
    const release = probe.hold();
    const first = batcher.run(list[0]!.requests, list[0]!.params);
    await settle();
    const rest = list.slice(1).map((call) => batcher.run(call.requests, call.params));
    release();
    const results = [await first, ...(await Promise.all(rest))];
    // [h] alone (engine busy), then i+j+k (3), then l (2; l+m would be 6), then m (4 > 3, on its own).
    expect(
      probe.seen.map((call) => call.requests.map((entry) => entry.groupId.slice(2, 3)).join('')),
    ).toEqual(['h', 'ijk', 'll', 'mmmm']);
    expect(results).toEqual(await separately(referenceEngine, list));
  });

  it('runs one call at a time, unchanged, when the engine does not claim seedFork', async () => {
    const engine = createReferenceRolloutEngine({ config, weights });
    const probe = instrument(engine, { ...engine.capabilities, seedFork: false });
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
    const results = await Promise.all(calls.map((call) => batcher.run(call.requests, call.params)));
    expect(probe.seen).toHaveLength(calls.length);
    expect(probe.mostInFlight()).toBe(1);
    probe.seen.forEach((seen, index) => {
      expect(seen.requests).toBe(calls[index]!.requests);
      expect(seen.params).toBe(calls[index]!.params);
    });
    expect(results).toEqual(await separately(referenceEngine, calls));
  });

  it('a bad call fails alone: the merged call is retried call by call', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
    const bad: Call = { requests: [request('bad')], params: params() };
    const list = [calls[0]!, bad, calls[2]!];
    const outcomes = await Promise.allSettled(list.map((call) => batcher.run(call.requests, call.params)));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const reason = (outcomes[1] as PromiseRejectedResult).reason;
    expect(MoerlError.isInstance(reason, 'INVALID_ARGUMENT')).toBe(true);
    // One merged attempt, then each call on its own with its own requests.
    expect(probe.seen.map((call) => call.requests.length)).toEqual([6, 2, 1, 3]);
    expect(probe.seen[2]!.requests).toBe(bad.requests);
    const good = await separately(referenceEngine, [calls[0]!, calls[2]!]);
    expect((outcomes[0] as PromiseFulfilledResult<Trajectory[]>).value).toEqual(good[0]);
    expect((outcomes[2] as PromiseFulfilledResult<Trajectory[]>).value).toEqual(good[1]);
    // And the batcher keeps working afterwards.
    expect(await batcher.run(calls[3]!.requests, calls[3]!.params)).toEqual(
      (await separately(referenceEngine, [calls[3]!]))[0],
    );
  });

  it('fails the calls taken off the queue when the batcher itself throws, and goes on with the next', async () => {
    const engine = createReferenceRolloutEngine({ config, weights });
    let broken = true;
    const flaky: RolloutEngine = {
      ...engine,
      // Read while a batch is taken, outside every per-call handler.
      get capabilities() {
        if (broken) throw new Error('capabilities unavailable');
        return engine.capabilities;
      },
    };
    const batcher = new RequestBatcher(flaky, { maxPending: 16 });
    const first = batcher.run(calls[0]!.requests, calls[0]!.params);
    await expect(first).rejects.toThrow('capabilities unavailable');
    expect(batcher.pending).toBe(0);
    broken = false;
    expect(await batcher.run(calls[1]!.requests, calls[1]!.params)).toEqual(
      (await separately(referenceEngine, [calls[1]!]))[0],
    );
  });

  it('exclusiveAfter: counts as pending while it prepares outside the queue, then runs alone', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 2 });
    let finishPreparing!: (value: string) => void;
    const prepared = new Promise<string>((resolve) => {
      finishPreparing = resolve;
    });
    const order: string[] = [];
    const update = batcher.exclusiveAfter(
      () => prepared,
      async (value) => {
        order.push(`task(${value}) after ${probe.seen.length} engine calls`);
        return value.length;
      },
    );
    expect(batcher.pending).toBe(1);
    // The engine is not held by the preparation: a call made meanwhile is answered.
    expect(await batcher.run(calls[0]!.requests, calls[0]!.params)).toHaveLength(2);
    const waiting = batcher.run(calls[1]!.requests, calls[1]!.params);
    expect(batcher.isFull).toBe(true);
    expect(() =>
      batcher.exclusiveAfter(
        async () => 1,
        async () => 1,
      ),
    ).toThrow(/queue full/);
    await waiting;
    finishPreparing('weights');
    expect(await update).toBe(7);
    expect(order).toEqual(['task(weights) after 2 engine calls']);
    expect(batcher.pending).toBe(0);
    const failed = batcher.exclusiveAfter(
      async () => {
        throw new Error('unreadable');
      },
      async () => 'never',
    );
    await expect(failed).rejects.toThrow('unreadable');
    expect(batcher.pending).toBe(0);
  });

  it('bounds pending calls: isFull, then run throws INVALID_ARGUMENT', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 2 });
    const release = probe.hold();
    const running = [batcher.run(calls[0]!.requests, calls[0]!.params)];
    await settle();
    expect(batcher.isFull).toBe(false);
    running.push(batcher.run(calls[1]!.requests, calls[1]!.params));
    expect(batcher.pending).toBe(2);
    expect(batcher.isFull).toBe(true);
    expect(() => batcher.run(calls[2]!.requests, calls[2]!.params)).toThrow(/queue full: 2 calls pending/);
    expect(() => batcher.exclusive(async () => 1)).toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT' }),
    );
    release();
    await Promise.all(running);
    expect(batcher.pending).toBe(0);
    expect(batcher.isFull).toBe(false);
  });

  it('runs an exclusive task alone, after the calls queued before it and before those queued after', async () => {
    const probe = instrument(createReferenceRolloutEngine({ config, weights }));
    const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
    const order: string[] = [];
    const release = probe.hold();
    const before = [batcher.run(calls[0]!.requests, calls[0]!.params)];
    await settle();
    before.push(batcher.run(calls[1]!.requests, calls[1]!.params));
    const task = batcher.exclusive(async () => {
      order.push(`task after ${probe.seen.length} engine calls`);
      return 'updated';
    });
    const after = [
      batcher.run(calls[2]!.requests, calls[2]!.params),
      batcher.run(calls[3]!.requests, calls[3]!.params),
    ];
    const failing = batcher.exclusive(() => {
      throw new Error('sync failure');
    });
    release();
    expect(await task).toBe('updated');
    await Promise.all([...before, ...after]);
    await expect(failing).rejects.toThrow('sync failure');
    expect(order).toEqual(['task after 2 engine calls']);
    // calls[1] waited alone behind the running call; calls[2] and calls[3] merged after the task.
    expect(probe.seen.map((call) => call.requests.length)).toEqual([2, 1, 4]);
    expect(batcher.pending).toBe(0);
  });

  it('rejects options that are not positive integers, naming the field', () => {
    const engine = createReferenceRolloutEngine({ config, weights });
    expect(() => new RequestBatcher(engine, { maxPending: 0 })).toThrow(
      /maxPending must be a positive integer/,
    );
    expect(() => new RequestBatcher(engine, { maxPending: 4, maxBatchRequests: 1.5 })).toThrow(
      /maxBatchRequests must be a positive integer, found 1.5/,
    );
  });

  // The ONNX engine decodes the merged requests in one ragged, padded batch; backend-onnx's batch-invariance
  // test shows that this changes nothing, to the bit.
  for (const prefixCache of [false, true]) {
    it(`merged calls on the ONNX engine sample what each call samples alone (prefix cache ${prefixCache ? 'on' : 'off'})`, async () => {
      const onnxWeights = createRandomWeights(smallMoeConfig, 5);
      const create = () =>
        createOnnxRolloutEngine({ config: smallMoeConfig, weights: onnxWeights, prefixCache });
      const list: Call[] = calls.map((call) => ({ ...call, params: { ...call.params, maxNewTokens: 12 } }));
      const probe = instrument(await create());
      const batcher = new RequestBatcher(probe.engine, { maxPending: 16 });
      const merged = await Promise.all(list.map((call) => batcher.run(call.requests, call.params)));
      await probe.engine.dispose();
      expect(probe.seen).toHaveLength(1);
      const alone = await separately(create, list);
      merged.forEach((trajectories, call) => {
        trajectories.forEach((trajectory, index) => {
          const want = alone[call]![index]!;
          expect(trajectory.id).toBe(want.id);
          expect([...trajectory.responseIds]).toEqual([...want.responseIds]);
          expect([...trajectory.routing!.experts]).toEqual([...want.routing!.experts]);
          expect(trajectory.finishReason).toBe(want.finishReason);
          expect([...trajectory.engineLogprobs]).toEqual([...want.engineLogprobs]);
          expect(trajectory.weightVersion).toBe(want.weightVersion);
        });
      });
    });
  }
});
