import {
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  MoerlError,
  type NamedTensors,
  type SamplingParams,
} from '@moerl/core';
import { createRandomWeights, createReferenceRolloutEngine, tinyMoeConfig } from '@moerl/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveExpertCompute } from './moe-session.js';
import {
  createOnnxRolloutEngine,
  type OnnxRolloutEngine,
  type OnnxRolloutEngineOptions,
} from './onnx-rollout-engine.js';

const config = tinyMoeConfig;
const weights = createRandomWeights(config, 99);
const engines: OnnxRolloutEngine[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((engine) => engine.dispose()));
});

async function engineWith(options: Partial<OnnxRolloutEngineOptions> = {}): Promise<OnnxRolloutEngine> {
  const engine = await createOnnxRolloutEngine({ config, weights, precision: 'fp32', ...options });
  engines.push(engine);
  return engine;
}

const sampling = (overrides: Partial<SamplingParams> = {}): SamplingParams => ({
  ...DEFAULT_SAMPLING_PARAMS,
  temperature: 0.9,
  maxNewTokens: 8,
  seed: 17,
  ...overrides,
});

const prompt = Int32Array.of(3, 1, 4, 1, 5, 9, 2, 6, 5, 3);
const group = (size: number, promptIds = prompt): GenerateRequest[] =>
  Array.from({ length: size }, (_, index) => ({ id: `s${index}`, groupId: 'g', promptIds }));
const mixed: GenerateRequest[] = [
  ...group(3),
  { id: 'short', groupId: 'h', promptIds: Int32Array.of(7) },
  { id: 'long', groupId: 'i', promptIds: Int32Array.of(2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5, 9, 0, 4, 5) },
];
// Prompts sharing 4, 8 and 9 leading tokens with `prompt`: partial hits whose uncached rest is 1+ tokens.
const partial: GenerateRequest[] = [4, 8, 9].map((shared) => ({
  id: `p${shared}`,
  groupId: 'p',
  promptIds: Int32Array.of(...prompt.subarray(0, shared), 30, 31),
}));

describe('createOnnxRolloutEngine', () => {
  for (const runtime of ['node', 'web'] as const) {
    it(`draws the same tokens, logprobs (≤ 1e-4) and routing as the reference engine for the same seeds (onnxruntime-${runtime})`, async () => {
      const engine = await engineWith({ prefixCache: false, runtime });
      expect(engine.runtime).toBe(`onnxruntime-${runtime}`);
      const reference = createReferenceRolloutEngine({ config, weights, precision: 'fp32' });
      const ours = await engine.generate(mixed, sampling());
      const theirs = await reference.generate(mixed, sampling());
      ours.forEach((trajectory, index) => {
        const want = theirs[index]!;
        expect([...trajectory.responseIds]).toEqual([...want.responseIds]);
        for (let step = 0; step < want.engineLogprobs.length; step++)
          expect(Math.abs(trajectory.engineLogprobs[step]! - want.engineLogprobs[step]!)).toBeLessThan(1e-4);
        expect(trajectory.routing!.positions).toBe(want.routing!.positions);
        expect([...trajectory.routing!.experts]).toEqual([...want.routing!.experts]);
      });
    });
  }

  it('reports the runtime it runs on: onnxruntime-node when installed (auto), else the one asked for', async () => {
    const auto = await engineWith();
    expect(auto.runtime).toBe('onnxruntime-node');
    expect(auto.runtimeSummary).toMatch(/^onnx runtime: onnxruntime-node \S+ \(native\)$/);
    const web = await engineWith({ runtime: 'web' });
    expect(web.runtime).toBe('onnxruntime-web');
    expect(web.runtimeSummary).toMatch(/^onnx runtime: onnxruntime-web \S+ \(WebAssembly CPU\)$/);
    await expect(engineWith({ runtime: 'gpu' as 'web' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('runtime must be one of auto, node, web'),
    });
  });

  it('on onnxruntime-web, asking for CUDA falls back to its WebAssembly CPU provider with one message', async () => {
    const messages: string[] = [];
    const engine = await engineWith({
      runtime: 'web',
      executionProvider: 'cuda',
      onWarning: (message) => messages.push(message),
    });
    expect(engine.executionProvider).toBe('cpu');
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/CUDA execution provider is unavailable on onnxruntime-web .*running on CPU/);
  });

  for (const implementation of ['router-cache', 'simple'] as const) {
    it(`with the prefix cache (${implementation}) on and off, the same seeds give identical tokens, logprobs and routing`, async () => {
      const cached = await engineWith({ prefixCache: { implementation } });
      expect(cached.prefixCacheImplementation).toBe(implementation);
      const uncached = await engineWith({ prefixCache: false });
      // Two calls: the second one also hits the full sequences the first one stored.
      for (const [seed, requests] of [
        [5, mixed],
        [6, mixed],
        [7, partial],
      ] as const) {
        const withCache = await cached.generate(requests, sampling({ seed }));
        const without = await uncached.generate(requests, sampling({ seed }));
        withCache.forEach((trajectory, index) => {
          const want = without[index]!;
          expect([...trajectory.responseIds]).toEqual([...want.responseIds]);
          expect([...trajectory.engineLogprobs]).toEqual([...want.engineLogprobs]);
          expect([...trajectory.routing!.experts]).toEqual([...want.routing!.experts]);
          expect(trajectory.finishReason).toBe(want.finishReason);
          expect(want.cachedPromptTokens).toBe(0);
        });
      }
      expect(cached.stats().cachedPromptTokens).toBeGreaterThan(0);
      expect(uncached.stats().cachedPromptTokens).toBe(0);
    });
  }

  it('an empty request list gives no trajectories; a disposed engine refuses work', async () => {
    const engine = await engineWith();
    expect(await engine.generate([], sampling())).toEqual([]);
    await engine.dispose();
    await expect(engine.generate(group(1), sampling())).rejects.toSatisfy((error: unknown) =>
      MoerlError.isInstance(error, 'INVALID_ARGUMENT'),
    );
  });

  it('a group of G samples of one prompt prefills the prompt once', async () => {
    const engine = await engineWith();
    const trajectories = await engine.generate(group(4), sampling());
    // The first sample computes the prompt; the others of the same call take its KV, routing and
    // first-token logits.
    expect(trajectories.map((trajectory) => trajectory.cachedPromptTokens)).toEqual([
      0,
      prompt.length,
      prompt.length,
      prompt.length,
    ]);
    expect(engine.stats().cachedPromptTokens).toBe(3 * prompt.length);
    // A later call finds the prompt in the prefix cache; its last token is fed again for the logits.
    const [later] = await engine.generate(group(1), sampling());
    expect(later!.cachedPromptTokens).toBe(prompt.length - 1);
    expect(engine.prefixCacheStats()!.hitTokens).toBeGreaterThanOrEqual(prompt.length - 1);
    // Prefill time is counted as a part of the generate time.
    const { prefillSeconds, generateSeconds } = engine.stats();
    expect(prefillSeconds).toBeGreaterThan(0);
    expect(prefillSeconds).toBeLessThanOrEqual(generateSeconds);
  });

  it('updateWeights invalidates the prefix cache, even for identical weights', async () => {
    const engine = await engineWith();
    await engine.generate(group(1), sampling());
    const hit = await engine.generate(group(1), sampling());
    expect(hit[0]!.cachedPromptTokens).toBe(prompt.length - 1);
    await engine.updateWeights(weights, 1);
    const after = await engine.generate(group(1), sampling());
    expect(after[0]!.cachedPromptTokens).toBe(0);
    expect(after[0]!.weightVersion).toBe(1);
    expect(hit[0]!.routing!.weightVersion).toBe(0);
    expect(after[0]!.routing!.weightVersion).toBe(1);
  });

  it('a ragged greedy batch gives each request the tokens it gets alone', async () => {
    const engine = await engineWith({ prefixCache: false });
    const together = await engine.generate(mixed, sampling({ temperature: 0, maxNewTokens: 6 }));
    for (const [index, request] of mixed.entries()) {
      const [alone] = await engine.generate([request], sampling({ temperature: 0, maxNewTokens: 6 }));
      expect([...together[index]!.responseIds]).toEqual([...alone!.responseIds]);
      expect([...together[index]!.routing!.experts]).toEqual([...alone!.routing!.experts]);
    }
  });

  it('sequences that stop early leave the batch; the others continue to maxNewTokens', async () => {
    const engine = await engineWith({ prefixCache: false });
    const greedy = await engine.generate(mixed, sampling({ temperature: 0 }));
    // Stop on the second greedy token of request 3: it must stop there, the rest must be unaffected unless
    // they emit that id too.
    const stopId = greedy[3]!.responseIds[1]!;
    const stopped = await engine.generate(mixed, sampling({ temperature: 0, stopTokenIds: [stopId] }));
    stopped.forEach((trajectory, index) => {
      const full = [...greedy[index]!.responseIds];
      const cut = full.indexOf(stopId);
      const expected = cut === -1 ? full : full.slice(0, cut + 1);
      expect([...trajectory.responseIds]).toEqual(expected);
      expect(trajectory.finishReason).toBe(cut === -1 ? 'length' : 'stop');
      expect(trajectory.routing!.positions).toBe(trajectory.promptIds.length + expected.length - 1);
    });
  });

  describe('bad input is a MoerlError naming the field, and the engine keeps working', () => {
    const cases: Array<[string, GenerateRequest, Partial<SamplingParams>, string]> = [
      [
        'token id ≥ vocab',
        { id: 'x', groupId: 'x', promptIds: Int32Array.of(1, config.vocabSize) },
        {},
        'promptIds[1]',
      ],
      ['negative token id', { id: 'x', groupId: 'x', promptIds: Int32Array.of(-1) }, {}, 'promptIds[0]'],
      ['empty prompt', { id: 'x', groupId: 'x', promptIds: new Int32Array(0) }, {}, 'promptIds'],
      [
        'prompt + maxNewTokens beyond the model positions',
        { id: 'x', groupId: 'x', promptIds: Int32Array.of(1, 2) },
        { maxNewTokens: config.maxPositionEmbeddings - 1 },
        'maxNewTokens',
      ],
      ['negative temperature', group(1)[0]!, { temperature: -1 }, 'temperature'],
      ['topP 0', group(1)[0]!, { topP: 0 }, 'topP'],
      ['fractional topK', group(1)[0]!, { topK: 1.5 }, 'topK'],
      ['maxNewTokens 0', group(1)[0]!, { maxNewTokens: 0 }, 'maxNewTokens'],
      ['non-integer seed', group(1)[0]!, { seed: 0.5 }, 'seed'],
    ];
    for (const [name, bad, overrides, field] of cases) {
      it(name, async () => {
        const engine = await engineWith();
        const good = group(2);
        const before = await engine.generate(good, sampling());
        const failing = engine.generate([good[0]!, { ...bad, samplingParams: overrides }], sampling());
        await expect(failing).rejects.toSatisfy(
          (error: unknown) =>
            MoerlError.isInstance(error, 'INVALID_ARGUMENT') && error.message.includes(field),
        );
        const after = await engine.generate(good, sampling());
        expect(after.map((trajectory) => [...trajectory.responseIds])).toEqual(
          before.map((trajectory) => [...trajectory.responseIds]),
        );
        expect(engine.stats().requests).toBe(4);
      });
    }

    it('an unknown precision is UNSUPPORTED', async () => {
      await expect(
        createOnnxRolloutEngine({ config, weights, precision: 'int8' as unknown as 'fp32' }),
      ).rejects.toSatisfy((error: unknown) => MoerlError.isInstance(error, 'UNSUPPORTED'));
    });

    it('an unknown expertCompute is INVALID_ARGUMENT naming the field', async () => {
      await expect(
        createOnnxRolloutEngine({ config, weights, expertCompute: 'fast' as unknown as 'sparse' }),
      ).rejects.toSatisfy(
        (error: unknown) =>
          MoerlError.isInstance(error, 'INVALID_ARGUMENT') && error.message.includes('expertCompute'),
      );
    });

    it('expertCompute auto: sparse for large experts chosen among more, grouped for many small ones, dense for few small or all-chosen ones', async () => {
      expect((await engineWith()).expertCompute).toBe('dense'); // few tiny experts
      expect((await engineWith({ expertCompute: 'sparse' })).expertCompute).toBe('sparse');
      expect((await engineWith({ expertCompute: 'grouped' })).expertCompute).toBe('grouped');
      expect(resolveExpertCompute({ ...config, hiddenSize: 64, moeIntermediateSize: 64 })).toBe('sparse');
      expect(resolveExpertCompute({ ...config, numExperts: 64, topK: 8 })).toBe('grouped');
      expect(
        resolveExpertCompute({ ...config, hiddenSize: 64, moeIntermediateSize: 64, topK: config.numExperts }),
      ).toBe('dense');
    });

    it('weights missing a tensor are CHECKPOINT_INVALID, at creation and at update', async () => {
      const broken: NamedTensors = new Map(weights);
      broken.delete('model.norm.weight');
      await expect(createOnnxRolloutEngine({ config, weights: broken })).rejects.toSatisfy((error: unknown) =>
        MoerlError.isInstance(error, 'CHECKPOINT_INVALID'),
      );
      const engine = await engineWith();
      await expect(engine.updateWeights(broken, 3)).rejects.toSatisfy((error: unknown) =>
        MoerlError.isInstance(error, 'CHECKPOINT_INVALID'),
      );
      expect(engine.stats().weightVersion).toBe(0);
      expect((await engine.generate(group(1), sampling()))[0]!.weightVersion).toBe(0);
    });
  });

  it('allowSpinning only changes how idle threads wait, not the results', async () => {
    const spinning = await engineWith({ allowSpinning: true, prefixCache: false });
    const sleeping = await engineWith({ allowSpinning: false, prefixCache: false });
    const [a] = await spinning.generate(group(1), sampling());
    const [b] = await sleeping.generate(group(1), sampling());
    expect([...a!.engineLogprobs]).toEqual([...b!.engineLogprobs]);
  });

  it('asking for CUDA without it falls back to CPU with one clear message', async () => {
    const messages: string[] = [];
    const engine = await engineWith({
      executionProvider: 'cuda',
      onWarning: (message) => messages.push(message),
    });
    if (engine.executionProvider === 'cpu') {
      expect(messages).toHaveLength(1);
      expect(messages[0]).toMatch(/CUDA execution provider is unavailable.*running on CPU/);
    } else {
      expect(messages).toHaveLength(0);
    }
    const [trajectory] = await engine.generate(group(1), sampling());
    expect(trajectory!.responseIds.length).toBe(8);
  });
});
