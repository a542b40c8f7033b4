import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createOnnxRolloutEngine } from '@moerl/backend-onnx';
import { createTfjsPolicyTrainer } from '@moerl/backend-tfjs';
import { crossEntropyObjective, readHfConfigFile, readSafetensorsFile } from '@moerl/core';
import { createRandomWeights, tinyMoeConfig } from '@moerl/testkit';
import { describeReplayParity } from '@moerl/testkit/vitest';
import { describe, expect, it } from 'vitest';

const tfjsOptions = { backends: ['tfjs-wasm'], onWarning: () => {} };

// The pair the trainer runs by default: onnx samples, tfjs trains. Replaying the engine's routing must give
// the engine's logprobs back, and a trainer's free routing must be what the engine recorded at fp32.
describeReplayParity({
  name: 'onnx engine + tfjs trainer',
  createEngine: (options) => createOnnxRolloutEngine({ ...options, precision: 'fp32' }),
  createTrainer: (options) => createTfjsPolicyTrainer({ ...options, backendOptions: tfjsOptions }),
  capabilities: { engineRecordsRouting: true, trainerReplaysRouting: true, trainerRecordsRouting: true },
});

describe('a tfjs checkpoint in the onnx engine', () => {
  it('loads unchanged and gives the trainer’s logprobs on the engine’s samples', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-cross-'));
    const trainer = await createTfjsPolicyTrainer({
      config: tinyMoeConfig,
      weights: createRandomWeights(tinyMoeConfig, 5),
      learningRate: 1e-2,
      backendOptions: tfjsOptions,
    });
    try {
      const prompt = Int32Array.from([1, 5, 9, 2]);
      await trainer.trainStep(
        { sequences: [{ promptIds: prompt, responseIds: Int32Array.from([7, 3]) }] },
        crossEntropyObjective(),
        {
          routing: 'free',
        },
      );
      await trainer.saveCheckpoint(directory);
      const engine = await createOnnxRolloutEngine({
        config: await readHfConfigFile(join(directory, 'config.json')),
        weights: (await readSafetensorsFile(join(directory, 'model.safetensors'))).tensors,
        precision: 'fp32',
      });
      try {
        const [trajectory] = await engine.generate([{ id: 'a', groupId: 'a', promptIds: prompt }], {
          temperature: 1,
          topP: 1,
          topK: 0,
          maxNewTokens: 6,
          stopTokenIds: [],
          seed: 11,
        });
        const replayed = await trainer.logprobs(
          {
            sequences: [
              { promptIds: prompt, responseIds: trajectory!.responseIds, routing: trajectory!.routing! },
            ],
          },
          { routing: 'replay' },
        );
        for (let index = 0; index < replayed.logprobs.length; index++) {
          expect(Math.abs(replayed.logprobs[index]! - trajectory!.engineLogprobs[index]!)).toBeLessThan(1e-4);
        }
      } finally {
        await engine.dispose();
      }
    } finally {
      await trainer.dispose();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
