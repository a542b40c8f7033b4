import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  concatRoutingRecords,
  createModelConfig,
  DEFAULT_SAMPLING_PARAMS,
  type GenerateRequest,
  type ModelConfig,
  moeLayerIndices,
  type RoutingRecord,
  readHfConfigFile,
  readSafetensorsFile,
  routingDisagreement,
  sequenceTokens,
  writeHfConfigFile,
  writeSafetensorsFile,
} from '@moerl/core';
import {
  createRandomWeights,
  createReferenceModel,
  createReferenceRolloutEngine,
  referenceLogprobs,
} from '@moerl/testkit';

export const demoConfig: ModelConfig = createModelConfig({
  vocabSize: 48,
  hiddenSize: 32,
  numLayers: 4,
  numAttentionHeads: 4,
  numKeyValueHeads: 2,
  numExperts: 8,
  topK: 2,
  moeIntermediateSize: 16,
  normTopKProb: true,
  mlpOnlyLayers: [0],
});

export interface RoutingSummary {
  readonly checkpointDirectory: string;
  readonly trajectories: number;
  readonly routedPositions: number;
  readonly routingBytes: number;
  /** Per MoE layer: how many choices each expert received. */
  readonly expertLoad: number[][];
  /** bf16 engine vs fp32 trainer routing on the same tokens. */
  readonly disagreementPerLayer: number[];
  readonly positionsWithAnyDifference: number;
  /** Mean |engine logprob − trainer logprob| with the trainer's own routing and with the engine's replayed. */
  readonly meanGapFree: number;
  readonly meanGapReplay: number;
  readonly maxGapFree: number;
  readonly maxGapReplay: number;
}

/**
 * Writes a random checkpoint, reads it back, samples rollouts with a bf16 engine, and measures what R3
 * fixes: how often the fp32 trainer's router disagrees with the engine's, and the logprob gap with and
 * without replaying the engine's routing.
 */
export async function runRoutingSummary(options: {
  directory: string;
  seed?: number;
  log?: (line: string) => void;
}): Promise<RoutingSummary> {
  const log = options.log ?? (() => {});
  const seed = options.seed ?? 0;
  await mkdir(options.directory, { recursive: true });
  const configPath = join(options.directory, 'config.json');
  const weightsPath = join(options.directory, 'model.safetensors');
  await writeHfConfigFile(configPath, demoConfig);
  await writeSafetensorsFile(weightsPath, createRandomWeights(demoConfig, seed), {
    format: 'pt',
    producer: 'moerl',
  });
  log(`wrote checkpoint ${options.directory} (config.json + model.safetensors)`);

  const config = await readHfConfigFile(configPath);
  const { tensors: weights } = await readSafetensorsFile(weightsPath);
  const layers = moeLayerIndices(config);
  log(
    `loaded ${weights.size} tensors; ${config.numLayers} layers, MoE layers ${layers.join(', ')}, ${config.numExperts} experts, top-${config.topK}`,
  );

  // The engine samples with bf16-rounded weights, as inference engines do; the trainer computes in fp32.
  const engine = createReferenceRolloutEngine({ config, weights, precision: 'bf16' });
  const trainer = createReferenceModel(config, weights);
  const requests: GenerateRequest[] = [];
  for (let prompt = 0; prompt < 4; prompt++) {
    for (let sample = 0; sample < 4; sample++) {
      requests.push({
        id: `p${prompt}-s${sample}`,
        groupId: `p${prompt}`,
        promptIds: Int32Array.from(
          { length: 6 + prompt },
          (_, index) => (index * 7 + prompt * 5 + 1) % config.vocabSize,
        ),
        samplingParams: { seed: seed * 1000 + prompt * 10 + sample },
      });
    }
  }
  const trajectories = await engine.generate(requests, {
    ...DEFAULT_SAMPLING_PARAMS,
    temperature: 1,
    maxNewTokens: 12,
  });
  log(`sampled ${trajectories.length} trajectories (4 prompts × 4 samples) on the bf16 engine`);

  const expertLoad = layers.map(() => new Array<number>(config.numExperts).fill(0));
  const engineRouting: RoutingRecord[] = [];
  const trainerRouting: RoutingRecord[] = [];
  let gapFree = 0;
  let gapReplay = 0;
  let maxGapFree = 0;
  let maxGapReplay = 0;
  let tokens = 0;
  for (const trajectory of trajectories) {
    const routing = trajectory.routing!;
    engineRouting.push(routing);
    for (let index = 0; index < routing.experts.length; index++) {
      const layer = Math.floor(index / routing.topK) % routing.moeLayers;
      expertLoad[layer]![routing.experts[index]!]!++;
    }
    const sequence = sequenceTokens(trajectory);
    const free = referenceLogprobs(trainer, sequence, { temperature: 1 });
    const replay = referenceLogprobs(trainer, sequence, { temperature: 1, routing });
    trainerRouting.push({ ...routing, experts: trainer.forward(sequence.subarray(0, -1)).routing.experts });
    const start = trajectory.promptIds.length - 1;
    trajectory.engineLogprobs.forEach((engineLogprob, index) => {
      const freeGap = Math.abs(free.logprobs[start + index]! - engineLogprob);
      const replayGap = Math.abs(replay.logprobs[start + index]! - engineLogprob);
      gapFree += freeGap;
      gapReplay += replayGap;
      maxGapFree = Math.max(maxGapFree, freeGap);
      maxGapReplay = Math.max(maxGapReplay, replayGap);
      tokens++;
    });
  }
  const engineAll = concatRoutingRecords(engineRouting);
  const disagreement = routingDisagreement(engineAll, concatRoutingRecords(trainerRouting));
  await engine.dispose();
  return {
    checkpointDirectory: options.directory,
    trajectories: trajectories.length,
    routedPositions: engineAll.positions,
    routingBytes: engineAll.experts.byteLength,
    expertLoad,
    disagreementPerLayer: [...disagreement.perLayer],
    positionsWithAnyDifference: disagreement.positionsWithAnyDifference,
    meanGapFree: gapFree / tokens,
    meanGapReplay: gapReplay / tokens,
    maxGapFree,
    maxGapReplay,
  };
}
