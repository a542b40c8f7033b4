import {
  DEFAULT_SAMPLING_PARAMS,
  type HostTensor,
  type NamedTensors,
  quantizeWeightsFp8,
  roundToBfloat16,
  routingDisagreement,
  sequenceTokens,
  sliceRoutingRecord,
} from '@moerl/core';
import { createRandomWeights, createReferenceModel, referenceLogprobs, smallMoeConfig } from '@moerl/testkit';
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
});
