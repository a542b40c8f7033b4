import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  type InferencePrecision,
  type SamplingParams,
} from '@moerl/core';
import { createRandomWeights, smallMoeConfig } from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import type { ActivationPrecision } from '../model/build-moe-graph.js';
import { createOnnxRolloutEngine, type OnnxTrajectory } from './onnx-rollout-engine.js';

// A request's samples must not depend on the other requests of its call, so a server may merge calls
// (RequestBatcher in @moerl/rollout-http). Two things used to make them depend on it, in the last bits of
// the logits: the lm_head MatMul took onnxruntime's one-row kernel for a lone row (now always ≥ 2 rows),
// and the attention sums over a ragged batch's padded KV put a row's decode slots into other SIMD lanes
// (now decode starts at a slot aligned to DECODE_SLOT_ALIGNMENT). With both, equality is exact.

const config = smallMoeConfig;
const weights = createRandomWeights(config, 5);

const promptOf = (length: number, salt: number) =>
  Int32Array.from({ length }, (_, position) => (position * 7 + salt * 13 + 1) % config.vocabSize);

// Lengths with many residues mod 16, so rows get every amount of padding; plus a GRPO-style duplicate and
// a prompt that extends another one (a partial prefix-cache hit when the cache is on).
const lengths = [1, 2, 5, 9, 16, 17, 23, 40];
const requests: GenerateRequest[] = [
  ...lengths.map((length, index) => ({
    id: `r${index}`,
    groupId: `g${index}`,
    promptIds: promptOf(length, index),
  })),
  { id: 'dup', groupId: 'g3', promptIds: promptOf(9, 3) },
  { id: 'ext', groupId: 'gx', promptIds: Int32Array.of(...promptOf(17, 5), 3, 1, 4) },
];

// Stop tokens end some sequences early, so the decode batch shrinks (down to one row) while others run on.
const params: SamplingParams = {
  ...DEFAULT_SAMPLING_PARAMS,
  temperature: 1,
  maxNewTokens: 16,
  stopTokenIds: [0, 1, 2],
  seed: 9,
};

/** Every request pinned to the fork of its position in the full call. */
const pinned = requests.map((request, index) => ({ ...request, seedFork: index }));

function expectIdentical(actual: OnnxTrajectory, expected: OnnxTrajectory): void {
  expect(actual.id).toBe(expected.id);
  expect([...actual.responseIds]).toEqual([...expected.responseIds]);
  // Bitwise: Float32Array elements compared exactly, no tolerance.
  expect([...actual.engineLogprobs]).toEqual([...expected.engineLogprobs]);
  expect([...actual.routing!.experts]).toEqual([...expected.routing!.experts]);
  expect(actual.finishReason).toBe(expected.finishReason);
}

describe.each(['dense', 'sparse', 'grouped'] as const)(
  'batch invariance of the ONNX engine (%s experts)',
  (expertCompute) => {
    for (const prefixCache of [false, true]) {
      it(`a request alone and in a ragged batch: identical tokens, logprobs and routing (prefix cache ${prefixCache ? 'on' : 'off'})`, async () => {
        const batchEngine = await createOnnxRolloutEngine({
          config,
          weights,
          precision: 'fp32',
          prefixCache,
          expertCompute,
        });
        const together = await batchEngine.generate(pinned, params);
        await batchEngine.dispose();
        // The stop tokens did shrink the batch, and some sequences ran to the end.
        expect(together.some((trajectory) => trajectory.finishReason === 'stop')).toBe(true);
        expect(together.some((trajectory) => trajectory.finishReason === 'length')).toBe(true);
        for (const [index, request] of pinned.entries()) {
          // A fresh engine each time, so the prefix cache holds nothing the batch run did not have.
          const engine = await createOnnxRolloutEngine({
            config,
            weights,
            precision: 'fp32',
            prefixCache,
            expertCompute,
          });
          const [alone] = await engine.generate([request], params);
          await engine.dispose();
          expectIdentical(together[index]!, alone!);
        }
      });
    }

    const variants = [
      { precision: 'bf16', activations: 'fp32' },
      { precision: 'fp16', activations: 'fp32' },
      { precision: 'bf16', activations: 'bf16' },
      { precision: 'fp8', activations: 'bf16' },
    ] as const satisfies readonly { precision: InferencePrecision; activations: ActivationPrecision }[];
    for (const { precision, activations } of variants) {
      it(`holds at ${precision}${activations === 'bf16' ? ' with bf16 activations' : ''} too`, async () => {
        const engine = await createOnnxRolloutEngine({
          config,
          weights,
          precision,
          activations,
          prefixCache: false,
          expertCompute,
        });
        const together = await engine.generate(pinned, params);
        for (const [index, request] of pinned.entries()) {
          const [alone] = await engine.generate([request], params);
          expectIdentical(together[index]!, alone!);
        }
        await engine.dispose();
      });
    }

    it('two calls merged into one with seedFork sample exactly what each call samples alone', async () => {
      const engine = await createOnnxRolloutEngine({
        config,
        weights,
        precision: 'fp32',
        prefixCache: false,
        expertCompute,
      });
      const first = requests.slice(0, 4);
      const second = requests.slice(4);
      const alone = [...(await engine.generate(first, params)), ...(await engine.generate(second, params))];
      const merged = await engine.generate(
        [
          ...first.map((request, index) => ({ ...request, seedFork: index })),
          ...second.map((request, index) => ({ ...request, seedFork: index })),
        ],
        params,
      );
      for (const [index, trajectory] of merged.entries()) expectIdentical(trajectory, alone[index]!);
      await engine.dispose();
    });

    // The price of the alignment: decode computes a response's KV with its slots shifted by the alignment
    // padding, so when a later prompt extends a cached trajectory (multi-turn), the reused response KV can
    // differ in the last bits from prefilling those positions afresh: exact when the shift keeps every slot in
    // its SIMD lane (first prompt length a multiple of 16), else within float32 rounding (measured ≤ 7.2e-7).
    it('a prompt that extends a cached trajectory: same tokens and routing as without the cache, logprobs within 1e-5', async () => {
      for (const length of [16, 5, 9, 23]) {
        const cached = await createOnnxRolloutEngine({
          config,
          weights,
          precision: 'fp32',
          prefixCache: true,
          expertCompute,
        });
        const uncached = await createOnnxRolloutEngine({
          config,
          weights,
          precision: 'fp32',
          prefixCache: false,
          expertCompute,
        });
        const [turn] = await cached.generate(
          [{ id: 't1', groupId: 't', promptIds: promptOf(length, 1) }],
          params,
        );
        const next: GenerateRequest = {
          id: 't2',
          groupId: 't',
          promptIds: Int32Array.of(...turn!.promptIds, ...turn!.responseIds, 3, 4),
        };
        const [hit] = await cached.generate([next], params);
        const [fresh] = await uncached.generate([next], params);
        expect(hit!.cachedPromptTokens).toBeGreaterThan(length);
        expect([...hit!.responseIds]).toEqual([...fresh!.responseIds]);
        expect([...hit!.routing!.experts]).toEqual([...fresh!.routing!.experts]);
        hit!.engineLogprobs.forEach((value, step) => {
          const difference = Math.abs(value - fresh!.engineLogprobs[step]!);
          expect(difference).toBeLessThanOrEqual(length % 16 === 0 ? 0 : 1e-5);
        });
        await cached.dispose();
        await uncached.dispose();
      }
    });

    // Multi-turn: every conversation continues from its own cached trajectory, so the prompts of one call
    // have cached prefixes of many lengths. Prefilled together (grouped by cached length modulo the slot
    // alignment, each row's past shifted by a multiple of it), each must give what it gives alone.
    it('continuations of cached trajectories prefilled together: identical to each one alone', async () => {
      const engineWith = () =>
        createOnnxRolloutEngine({ config, weights, precision: 'fp32', prefixCache: true, expertCompute });
      const firstTurn = requests.slice(0, lengths.length);
      const batchEngine = await engineWith();
      const turns = await batchEngine.generate(firstTurn, params);
      const continuations = turns.map((turn, index) => ({
        id: `c${index}`,
        groupId: turn.groupId,
        promptIds: Int32Array.of(...turn.promptIds, ...turn.responseIds, 3, index % 5),
        seedFork: index,
      }));
      const together = await batchEngine.generate(continuations, params);
      await batchEngine.dispose();
      const cachedLengths = together.map((trajectory) => trajectory.cachedPromptTokens);
      // Several cached lengths, some sharing a residue modulo 16 and some not: both grouping paths run.
      const residues = cachedLengths.map((length) => length % 16);
      expect(new Set(cachedLengths).size).toBeGreaterThan(new Set(residues).size);
      expect(new Set(residues).size).toBeGreaterThan(1);
      for (const [index, request] of continuations.entries()) {
        const engine = await engineWith();
        await engine.generate(firstTurn, params);
        const [alone] = await engine.generate([request], params);
        await engine.dispose();
        expect(alone!.cachedPromptTokens).toBe(cachedLengths[index]);
        expectIdentical(together[index]!, alone!);
      }
    });

    it('rejects a seedFork that is not a non-negative safe integer, naming the request and field', async () => {
      const engine = await createOnnxRolloutEngine({ config, weights, prefixCache: false, expertCompute });
      for (const seedFork of [-1, 2.5, Number.NaN, 2 ** 60]) {
        await expect(engine.generate([requests[0]!, { ...requests[1]!, seedFork }], params)).rejects.toThrow(
          /Request 1: seedFork must be a non-negative safe integer/,
        );
      }
      await engine.dispose();
    });
  },
);
