import { createRandom, type Fp8WeightOptions, type InferencePrecision, type NamedTensors } from '@moerl/core';
import type { RunConfig } from '../config/run-config-schema.js';
import { tableCell, textTable } from '../report/text-table.js';
import { resolveRunBackends } from '../run/backends.js';
import { type MismatchMetrics, mismatchMetrics } from '../run/mismatch-metrics.js';
import { logprobTemperatureOf, modelConfigOf, samplingParamsFor } from '../run/model-setup.js';
import { collectRollouts, trainingBatchOf } from '../run/rollout-batch.js';
import type { RunEvents } from '../run/run-events.js';
import { warmStartedWeights } from '../run/warm-start.js';
import { sampleTrainingExamples } from '../tasks/prompt-sampler.js';
import { taskOf } from '../tasks/run-task.js';
import { createEvalSet } from '../tasks/task-registry.js';

/** One inference setting of the rollout engine, measured against the fp32 trainer. */
export interface PrecisionVariant {
  readonly name: string;
  readonly precision: InferencePrecision;
  readonly fp8?: Fp8WeightOptions;
  /** Activations rounded to bf16 as a bf16 engine computes them (onnx engine); default fp32. */
  readonly activations?: 'fp32' | 'bf16';
}

/** The settings real stacks sample with, and the fp32 control. */
export const DEFAULT_PRECISION_VARIANTS: readonly PrecisionVariant[] = [
  { name: 'fp32', precision: 'fp32' },
  { name: 'fp16', precision: 'fp16' },
  { name: 'bf16 weights', precision: 'bf16' },
  { name: 'fp8 block', precision: 'fp8', fp8: { scheme: 'block' } },
  { name: 'fp8 channel', precision: 'fp8', fp8: { scheme: 'channel' } },
  { name: 'fp8 block + gate', precision: 'fp8', fp8: { scheme: 'block', quantizeRouterGate: true } },
  { name: 'bf16 weights + act', precision: 'bf16', activations: 'bf16' },
  { name: 'fp8 block + bf16 act', precision: 'fp8', fp8: { scheme: 'block' }, activations: 'bf16' },
];

export interface PrecisionPanelRow extends MismatchMetrics {
  readonly variant: string;
  readonly precision: InferencePrecision;
  readonly fp8?: Fp8WeightOptions;
  readonly activations?: 'fp32' | 'bf16';
  readonly tokens: number;
  /** Quantiles of |trainer − engine| over every sampled token, free and replayed. */
  readonly absDeltaQuantilesFree: Readonly<Record<'p50' | 'p90' | 'p99', number>>;
  readonly absDeltaQuantilesReplay: Readonly<Record<'p50' | 'p90' | 'p99', number>>;
}

export interface PrecisionPanelOptions {
  /** Model, task, warm start and sampling settings (the rollout precision is the variants'). */
  readonly config: RunConfig;
  readonly variants?: readonly PrecisionVariant[];
  /** Training-distribution prompts sampled per variant (each `rollout.groupSize` times). Default 64. */
  readonly prompts?: number;
  readonly events?: RunEvents;
}

export interface PrecisionPanelResult {
  readonly rows: readonly PrecisionPanelRow[];
  readonly prompts: number;
  readonly samplesPerPrompt: number;
}

function quantiles(values: Float64Array): Record<'p50' | 'p90' | 'p99', number> {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) =>
    sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

function absDeltas(trainer: Float32Array, engine: Float32Array): Float64Array {
  return Float64Array.from(trainer, (value, index) => Math.abs(value - engine[index]!));
}

/**
 * The precision panel of the R3 study: one warm-started model (the config's seed, task and warm start),
 * the same training-distribution prompts sampled by the rollout engine in each precision, and for each the
 * trainer–engine mismatch with the trainer routing freely and replaying the engine's routing: router
 * flips per MoE layer, tokens with a flip, k3 KL, |Δlogp| tail, and how the KL splits between tokens
 * whose routing flipped and the rest.
 */
export async function precisionPanel(options: PrecisionPanelOptions): Promise<PrecisionPanelResult> {
  const { config, events } = options;
  const variants = options.variants ?? DEFAULT_PRECISION_VARIANTS;
  const task = await taskOf(config);
  const modelConfig = await modelConfigOf(config, task);
  const backends = await resolveRunBackends(config.backends);
  for (const line of backends.summary) events?.log?.(line);
  const heldOut = new Set(
    createEvalSet(task, config.eval.size, config.seed).map((example) => example.prompt),
  );
  const weights: NamedTensors = await warmStartedWeights({
    config,
    modelConfig,
    task,
    backends,
    heldOut,
    events,
  });
  const prompts = options.prompts ?? 64;
  const examples = sampleTrainingExamples(task, prompts, createRandom(config.seed).fork('panel'), heldOut);
  const trainer = await backends.createTrainer({ config: modelConfig, weights, seed: config.seed });
  const temperature = logprobTemperatureOf(config);
  const rows: PrecisionPanelRow[] = [];
  try {
    for (const variant of variants) {
      events?.log?.(`precision panel: ${variant.name}`);
      const engine = await backends.createEngine({
        config: modelConfig,
        weights,
        precision: variant.precision,
        ...(variant.fp8 === undefined ? {} : { fp8: variant.fp8 }),
        backendOptions: {
          prefixCache: config.rollout.prefixCache,
          ...(variant.activations === 'bf16' ? { activations: 'bf16' } : {}),
        },
      });
      try {
        // The same prompts and sampling seeds for every variant, so they differ by precision only.
        const rollouts = await collectRollouts(engine, task, examples, {
          groupSize: config.rollout.groupSize,
          sampling: samplingParamsFor(config, task, 1),
          random: createRandom(config.seed).fork('panel-sampling'),
          formatReward: config.task.formatReward,
          idPrefix: 'panel',
        });
        const batch = trainingBatchOf(rollouts.trajectories, 'engine');
        const free = await trainer.logprobs(batch, { routing: 'free', temperature });
        const replay = await trainer.logprobs(batch, { routing: 'replay', temperature });
        const mismatch = mismatchMetrics(rollouts.trajectories, rollouts.engineLogprobs, free, replay);
        rows.push({
          variant: variant.name,
          precision: variant.precision,
          ...(variant.fp8 === undefined ? {} : { fp8: variant.fp8 }),
          ...(variant.activations === undefined ? {} : { activations: variant.activations }),
          tokens: rollouts.responseTokens,
          ...mismatch,
          absDeltaQuantilesFree: quantiles(absDeltas(free.logprobs, rollouts.engineLogprobs)),
          absDeltaQuantilesReplay: quantiles(absDeltas(replay.logprobs, rollouts.engineLogprobs)),
        });
      } finally {
        await engine.dispose();
      }
    }
  } finally {
    await trainer.dispose();
  }
  return { rows, prompts, samplesPerPrompt: config.rollout.groupSize };
}

/** Flipped tokens below which the panel does not print the KL ratio on them. */
const MIN_FLIPPED_TOKENS = 20;

/** The panel as a fixed-width table, one row per variant. */
export function precisionPanelTable(rows: readonly PrecisionPanelRow[]): string {
  const header = [
    'engine precision',
    'flips/choice',
    'tokens flipped',
    'KL free',
    'KL replay',
    'free/replay',
    'max|Δ| free',
    'max|Δ| replay',
    '>ln2 free',
    '>ln2 replay',
    'KL share on flipped',
    'KL flipped free/replay',
  ];
  const body = rows.map((row) => {
    const flips =
      row.routingDisagreement.length === 0
        ? Number.NaN
        : row.routingDisagreement.reduce((sum, value) => sum + value, 0) / row.routingDisagreement.length;
    return [
      row.variant,
      tableCell(flips, 4),
      tableCell(row.tokensWithRoutingDifference, 3),
      tableCell(row.klFree, 0, true),
      tableCell(row.klReplay, 0, true),
      tableCell(row.klFree / row.klReplay, 2),
      tableCell(row.maxAbsDeltaFree, 3),
      tableCell(row.maxAbsDeltaReplay, 3),
      tableCell(row.extremeTokenFractionFree, 4),
      tableCell(row.extremeTokenFractionReplay, 4),
      tableCell(row.klFreeShareOnFlippedTokens, 2),
      // A ratio over a handful of tokens says nothing: shown from MIN_FLIPPED_TOKENS flipped tokens on.
      row.tokensWithRoutingDifference * row.tokens >= MIN_FLIPPED_TOKENS
        ? tableCell(row.klFreeFlipped / row.klReplayFlipped, 1)
        : `(${Math.round(row.tokensWithRoutingDifference * row.tokens)} tok)`,
    ];
  });
  return textTable(header, body);
}
