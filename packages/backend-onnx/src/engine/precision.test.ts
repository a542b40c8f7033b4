import {
  createModelConfig,
  DEFAULT_SAMPLING_PARAMS,
  type HostTensor,
  type NamedTensors,
  quantizeWeightsFp8,
  roundToBfloat16,
  routingDisagreement,
  sequenceTokens,
  sliceRoutingRecord,
  type Trajectory,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceModel,
  type ReferenceModel,
  referenceLogprobs,
  smallMoeConfig,
} from '@moerl/testkit';
import { describe, expect, it } from 'vitest';
import { createOnnxRolloutEngine } from './onnx-rollout-engine.js';

// testkit's small MoE: 4 layers (layer 0 dense), 3 MoE layers of 8 experts, top-2.
const config = smallMoeConfig;
const weights = createRandomWeights(config, 0);

function roundedToBfloat16(named: NamedTensors): NamedTensors {
  return new Map(
    [...named].map(([name, tensor]): [string, HostTensor] => [
      name,
      { ...tensor, data: roundToBfloat16(tensor.data as Float32Array) } as HostTensor,
    ]),
  );
}

describe('inference precision', () => {
  it('changes some routing decisions relative to the fp32 trainer, and reports its own faithfully', async () => {
    const engine = await createOnnxRolloutEngine({ config, weights, precision: 'bf16' });
    const requests = Array.from({ length: 8 }, (_, index) => ({
      id: `r${index}`,
      groupId: `g${index}`,
      promptIds: Int32Array.from(
        { length: 12 },
        (_, position) => (index * 7 + position * 5) % config.vocabSize,
      ),
    }));
    const trajectories = await engine.generate(requests, {
      ...DEFAULT_SAMPLING_PARAMS,
      maxNewTokens: 24,
      seed: 1,
    });
    await engine.dispose();
    const fp32 = createReferenceModel(config, weights);
    const bf16 = createReferenceModel(config, roundedToBfloat16(weights));
    let choices = 0;
    let againstFp32 = 0;
    let againstBf16 = 0;
    for (const trajectory of trajectories) {
      const tokens = sequenceTokens(trajectory);
      const fed = tokens.length - 1;
      const routing = trajectory.routing!;
      const weight = fed * routing.moeLayers * routing.topK;
      choices += weight;
      againstFp32 +=
        weight *
        routingDisagreement(routing, sliceRoutingRecord(fp32.forward(tokens).routing, 0, fed)).overall;
      againstBf16 +=
        weight *
        routingDisagreement(routing, sliceRoutingRecord(bf16.forward(tokens).routing, 0, fed)).overall;
    }
    // The bf16 engine routes like a bf16 model (up to float32-vs-float64 near-ties), not like the fp32 one.
    // Measured with these seeds: 5 of 1680 choices differ from fp32 routing, 0 from bf16 routing.
    expect(againstBf16 / choices).toBeLessThan(0.001);
    expect(againstFp32).toBeGreaterThan(0);
    expect(againstFp32).toBeGreaterThan(againstBf16);
  });

  it('fp16: the engine samples in half precision, close to the fp32 reference', async () => {
    const engine = await createOnnxRolloutEngine({ config, weights, precision: 'fp16' });
    expect(engine.capabilities.precisions).toContain('fp16');
    const requests = Array.from({ length: 4 }, (_, index) => ({
      id: `r${index}`,
      groupId: `g${index}`,
      promptIds: Int32Array.from(
        { length: 10 },
        (_, position) => (index * 11 + position * 3) % config.vocabSize,
      ),
    }));
    const trajectories = await engine.generate(requests, {
      ...DEFAULT_SAMPLING_PARAMS,
      maxNewTokens: 12,
      seed: 2,
    });
    await engine.dispose();
    const fp32 = createReferenceModel(config, weights);
    let worst = 0;
    let exact = true;
    for (const trajectory of trajectories) {
      const tokens = sequenceTokens(trajectory);
      const expected = referenceLogprobs(fp32, tokens, { temperature: 1 }).logprobs.subarray(
        trajectory.promptIds.length - 1,
      );
      trajectory.engineLogprobs.forEach((value, index) => {
        worst = Math.max(worst, Math.abs(value - expected[index]!));
        if (Math.abs(value - expected[index]!) > 1e-5) exact = false;
      });
      expect(trajectory.routing!.positions).toBe(tokens.length - 1);
    }
    expect(worst).toBeLessThan(0.1);
    expect(exact).toBe(false);
  });

  it('fp8: routes and scores like the reference model on e4m3-quantised weights, unlike bf16', async () => {
    const engine = await createOnnxRolloutEngine({
      config,
      weights,
      precision: 'fp8',
      fp8: { scheme: 'channel' },
    });
    expect(engine.capabilities.precisions).toContain('fp8');
    const requests = Array.from({ length: 6 }, (_, index) => ({
      id: `r${index}`,
      groupId: `g${index}`,
      promptIds: Int32Array.from(
        { length: 10 },
        (_, position) => (index * 13 + position * 7) % config.vocabSize,
      ),
    }));
    const trajectories = await engine.generate(requests, {
      ...DEFAULT_SAMPLING_PARAMS,
      maxNewTokens: 16,
      seed: 3,
    });
    await engine.dispose();
    const fp8 = createReferenceModel(config, quantizeWeightsFp8(weights, { scheme: 'channel' }));
    const bf16 = createReferenceModel(config, roundedToBfloat16(weights));
    let worst = 0;
    let choices = 0;
    let againstFp8 = 0;
    let againstBf16 = 0;
    for (const trajectory of trajectories) {
      const tokens = sequenceTokens(trajectory);
      const fed = tokens.length - 1;
      const expected = referenceLogprobs(fp8, tokens, { temperature: 1 }).logprobs.subarray(
        trajectory.promptIds.length - 1,
      );
      trajectory.engineLogprobs.forEach((value, index) => {
        worst = Math.max(worst, Math.abs(value - expected[index]!));
      });
      const routing = trajectory.routing!;
      const weight = fed * routing.moeLayers * routing.topK;
      choices += weight;
      againstFp8 +=
        weight *
        routingDisagreement(routing, sliceRoutingRecord(fp8.forward(tokens).routing, 0, fed)).overall;
      againstBf16 +=
        weight *
        routingDisagreement(routing, sliceRoutingRecord(bf16.forward(tokens).routing, 0, fed)).overall;
    }
    // float32 engine vs float64 reference on the same quantised weights: only summation order differs.
    expect(worst).toBeLessThan(1e-4);
    expect(againstFp8 / choices).toBeLessThan(0.001);
    expect(againstBf16).toBeGreaterThan(againstFp8);
  });

  describe('bf16 activations', () => {
    const requests = Array.from({ length: 6 }, (_, index) => ({
      id: `r${index}`,
      groupId: `g${index}`,
      promptIds: Int32Array.from(
        { length: 10 },
        (_, position) => (index * 5 + position * 11 + 2) % config.vocabSize,
      ),
    }));
    const sampling = { ...DEFAULT_SAMPLING_PARAMS, maxNewTokens: 16, seed: 4 };

    /** Routing disagreement (fraction of choices) and worst logprob gap of the trajectories against `model`. */
    function compare(trajectories: readonly Trajectory[], model: ReferenceModel) {
      let worst = 0;
      let total = 0;
      let count = 0;
      let choices = 0;
      let disagreement = 0;
      for (const trajectory of trajectories) {
        const tokens = sequenceTokens(trajectory);
        const fed = tokens.length - 1;
        const expected = referenceLogprobs(model, tokens, { temperature: 1 }).logprobs.subarray(
          trajectory.promptIds.length - 1,
        );
        trajectory.engineLogprobs.forEach((value, index) => {
          worst = Math.max(worst, Math.abs(value - expected[index]!));
          total += Math.abs(value - expected[index]!);
          count++;
        });
        const routing = trajectory.routing!;
        const weight = fed * routing.moeLayers * routing.topK;
        choices += weight;
        disagreement +=
          weight *
          routingDisagreement(routing, sliceRoutingRecord(model.forward(tokens).routing, 0, fed)).overall;
      }
      return { worst, mean: total / count, disagreement: disagreement / choices };
    }

    // Top-4 makes the order of the bf16 sum over experts matter.
    const topFour = createModelConfig({ ...config, topK: 4 });
    const cases = [
      ['top-2', config],
      ['top-4', topFour],
    ] as const;
    for (const [name, modelConfig] of cases) {
      for (const expertCompute of ['dense', 'sparse', 'grouped'] as const) {
        it(`bf16 weights (${name}, ${expertCompute} experts): matches the bf16-activation reference, unlike float32 activations`, async () => {
          const engine = await createOnnxRolloutEngine({
            config: modelConfig,
            weights,
            precision: 'bf16',
            activations: 'bf16',
            expertCompute,
          });
          expect(engine.activations).toBe('bf16');
          const trajectories = await engine.generate(requests, sampling);
          await engine.dispose();
          const rounded = roundedToBfloat16(weights);
          const oracle = compare(
            trajectories,
            createReferenceModel(modelConfig, rounded, { activations: 'bf16' }),
          );
          const float = compare(trajectories, createReferenceModel(modelConfig, rounded));
          // Measured (top-2 / top-4, dense and sparse alike): routing identical; logprobs within 0.018 / 0.014,
          // mean gap 0.0009 / 0.0008 (a float32 sum in the engine and a float64 one in the reference round to
          // neighbouring bf16 numbers now and then, about one logit ulp); against the float32-activation
          // reference worst 0.47 / 0.041, mean 0.027 / 0.012, and 1.3% / 0.4% of the routing.
          expect(oracle.disagreement).toBeLessThan(0.001);
          expect(oracle.worst).toBeLessThan(0.05);
          expect(float.mean).toBeGreaterThan(8 * oracle.mean);
          expect(float.disagreement).toBeGreaterThan(oracle.disagreement);
        });
      }
    }

    it('fp8 weights: matches the bf16-activation reference on e4m3-quantised weights', async () => {
      const engine = await createOnnxRolloutEngine({
        config,
        weights,
        precision: 'fp8',
        activations: 'bf16',
        fp8: { scheme: 'channel' },
      });
      const trajectories = await engine.generate(requests, sampling);
      await engine.dispose();
      const quantised = quantizeWeightsFp8(weights, { scheme: 'channel' });
      const oracle = compare(trajectories, createReferenceModel(config, quantised, { activations: 'bf16' }));
      const float = compare(trajectories, createReferenceModel(config, quantised));
      // Measured: identical routing and logprobs; against float32 activations worst 0.15 and 0.7% of the routing.
      expect(oracle.disagreement).toBeLessThan(0.001);
      expect(oracle.worst).toBeLessThan(0.05);
      expect(float.mean).toBeGreaterThan(8 * oracle.mean);
      expect(float.worst).toBeGreaterThan(0.05);
      expect(float.disagreement).toBeGreaterThan(oracle.disagreement);
    });

    it('samples differently from the float32-activation engine on the same bf16 weights', async () => {
      const run = async (activations: 'fp32' | 'bf16') => {
        const engine = await createOnnxRolloutEngine({ config, weights, precision: 'bf16', activations });
        const trajectories = await engine.generate(requests, sampling);
        await engine.dispose();
        return trajectories;
      };
      const [float, bf16] = [await run('fp32'), await run('bf16')];
      const differs = float.some(
        (trajectory, index) =>
          trajectory.engineLogprobs.some(
            (value, position) => value !== bf16[index]!.engineLogprobs[position],
          ) || trajectory.responseIds.length !== bf16[index]!.responseIds.length,
      );
      expect(differs).toBe(true);
    });

    it('refuses bf16 activations with fp16 or fp32 weights (UNSUPPORTED) and unknown values (INVALID_ARGUMENT)', async () => {
      for (const precision of ['fp16', 'fp32'] as const) {
        await expect(
          createOnnxRolloutEngine({ config, weights, precision, activations: 'bf16' }),
        ).rejects.toMatchObject({ code: 'UNSUPPORTED', message: expect.stringContaining('activations') });
      }
      await expect(
        createOnnxRolloutEngine({ config, weights, precision: 'bf16', activations: 'fp16' as 'bf16' }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });
  });
});
