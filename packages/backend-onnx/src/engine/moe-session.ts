import {
  expectedWeights,
  type Fp8WeightOptions,
  fromFloat32,
  type InferencePrecision,
  type ModelConfig,
  MoerlError,
  moeLayerIndices,
  type NamedTensors,
  quantizeWeightsFp8,
  roundToBfloat16,
  toFloat32,
  validateWeights,
} from '@moerl/core';
import {
  type ActivationPrecision,
  type ExpertCompute,
  GRAPH_IO,
  STACKED_EXPERTS,
  weightsAsInputs,
} from '../model/build-moe-graph.js';
import { encodeMoeModel } from '../model/encode-moe-model.js';
import { type KvTensor, selectRows } from './kv-layout.js';
import {
  type LoadedOnnxRuntime,
  loadOnnxRuntime,
  type OnnxRuntimeOption,
  type Ort,
  type OrtSession,
  type OrtSessionOptions,
  type OrtTensor,
} from './ort-runtime.js';

export type ExecutionProvider = 'cpu' | 'cuda';

/**
 * One layer's cached keys and values, `[batch, kvHeads, slots, headDim]` float32 each. Plain arrays, not
 * runtime tensors: the host-side moves (kv-layout) do not depend on which onnxruntime runs the graph.
 */
export interface LayerKv {
  readonly key: KvTensor;
  readonly value: KvTensor;
}

export interface ForwardInput {
  readonly batch: number;
  readonly sequence: number;
  /** `[batch × sequence]` token ids. */
  readonly inputIds: ArrayLike<number>;
  /** `[batch × sequence]` RoPE positions. */
  readonly positionIds: ArrayLike<number>;
  /** `[batch × sequence × (past + sequence)]`: 0 where attention is allowed, MASKED elsewhere. */
  readonly attentionBias: Float32Array;
  /** Flattened `batch × sequence` rows that need logits. */
  readonly logitRows: ArrayLike<number>;
  /** Per layer; absent means an empty past. */
  readonly past?: readonly LayerKv[];
}

export interface ForwardOutput {
  /** `[rows × vocab]`. */
  readonly logits: Float32Array;
  readonly present: LayerKv[];
  /** `[batch × sequence × moeLayers × topK]` expert ids; empty when the model has no MoE layer. */
  readonly routing: Int32Array;
}

/** What `attention_bias` holds for a slot a query must not see; exp(MASKED − max) underflows to exactly 0. */
export const MASKED = -1e30;

export interface MoeSessionOptions {
  readonly config: ModelConfig;
  readonly weights: NamedTensors;
  readonly precision: InferencePrecision;
  /**
   * How activations are stored: `fp32` (default) or `bf16` (with `bf16` and `fp8` weights only; see
   * `ActivationPrecision`).
   */
  readonly activations?: ActivationPrecision;
  /** Scales and exclusions of the `fp8` precision. */
  readonly fp8?: Fp8WeightOptions;
  readonly executionProvider: ExecutionProvider;
  /** Which onnxruntime package runs the graph (see `OnnxRuntimeOption`); default `auto`. */
  readonly runtime?: OnnxRuntimeOption;
  readonly intraOpNumThreads?: number;
  /** How MoE layers compute their experts; default `auto` (see `resolveExpertCompute`). */
  readonly expertCompute?: ExpertComputeOption;
  /** Let idle intra-op threads spin (onnxruntime's default); off unless asked for. */
  readonly allowSpinning?: boolean;
  /** Receives one line when a requested provider is unavailable and CPU is used instead. */
  readonly onFallback?: (message: string) => void;
}

export interface MoeSession {
  readonly executionProvider: ExecutionProvider;
  readonly activations: ActivationPrecision;
  /** The onnxruntime package the session runs on, its version and why better ones were skipped. */
  readonly runtime: LoadedOnnxRuntime;
  /** How the session's MoE layers compute their experts. */
  readonly expertCompute: ExpertCompute;
  forward(input: ForwardInput): Promise<ForwardOutput>;
  setWeights(weights: NamedTensors): void;
  /** An empty KV for a batch (zero slots). */
  emptyKv(batch: number): LayerKv[];
  release(): Promise<void>;
}

/** An engine's choice of expert computation: one of `ExpertCompute`, or `auto`. */
export type ExpertComputeOption = ExpertCompute | 'auto';

const EXPERT_COMPUTE_OPTIONS: readonly ExpertComputeOption[] = ['auto', 'sparse', 'grouped', 'dense'];

/**
 * `auto` → `dense` when the model routes to all its experts; `sparse` when its experts are large enough
 * (hidden × moeIntermediateSize ≥ 4096) that reading an expert's weights costs more than one more MatMul
 * node; `grouped` for many (≥ 32) small experts, where onnxruntime's cost per node would make `sparse` pay per
 * expert; `dense` for few small experts, where computing all of them at once is cheapest. The choice depends
 * on the model only, never on a batch. `sparse` and `grouped` give bit-identical results.
 */
export function resolveExpertCompute(
  config: ModelConfig,
  option: ExpertComputeOption = 'auto',
): ExpertCompute {
  if (!EXPERT_COMPUTE_OPTIONS.includes(option)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `expertCompute must be one of ${EXPERT_COMPUTE_OPTIONS.join(', ')}, found ${String(option)}`,
      { details: { field: 'expertCompute', found: option, supported: EXPERT_COMPUTE_OPTIONS } },
    );
  }
  if (option !== 'auto') return option;
  if (config.topK >= config.numExperts) return 'dense';
  if (config.hiddenSize * config.moeIntermediateSize >= 4096) return 'sparse';
  return config.numExperts >= 32 ? 'grouped' : 'dense';
}

export const SUPPORTED_PRECISIONS: readonly InferencePrecision[] = ['fp32', 'bf16', 'fp16', 'fp8'];

/**
 * Converts checkpoint tensors (F32/F16/BF16) to the session's float32 inputs, rounded to bfloat16 for
 * `bf16` and fake-quantised to e4m3 for `fp8`: every non-expert weight under its own name, and per MoE layer the experts stacked and transposed
 * (`STACKED_EXPERTS`), plus each expert's slice of the stacks (no copy). A session feeds the ones its graph
 * takes.
 */
export function weightTensors(
  config: ModelConfig,
  weights: NamedTensors,
  precision: InferencePrecision,
  fp8: Fp8WeightOptions | undefined,
  ort: Ort,
): Map<string, OrtTensor> {
  validateWeights(config, weights, { subject: 'ONNX engine weights' });
  // bf16 and fp8 round once here and compute in float32 (an FP8 engine multiplies e4m3 values by their
  // FP32 scales and accumulates in float32); fp16 rounds here too and the graph computes in float16.
  const source = precision === 'fp8' ? quantizeWeightsFp8(weights, fp8) : weights;
  const values = (name: string) => {
    const data = toFloat32(source.get(name)!);
    return precision === 'fp32' || precision === 'fp8'
      ? data
      : precision === 'bf16'
        ? roundToBfloat16(data)
        : roundToFloat16(data);
  };
  const tensor = (data: Float32Array, dims: number[]) =>
    precision === 'fp16'
      ? new ort.Tensor('float16', float16Bits(data), dims)
      : new ort.Tensor('float32', data, dims);
  // One expert's `[rows, cols]` slice of a stack, sharing its memory.
  const view = (stack: OrtTensor, expert: number, rows: number, cols: number) => {
    const data = stack.data as Float32Array | Uint16Array;
    const size = rows * cols;
    return new ort.Tensor(stack.type, data.subarray(expert * size, (expert + 1) * size), [rows, cols]);
  };
  const tensors = new Map<string, OrtTensor>();
  for (const spec of expectedWeights(config)) {
    if (spec.name.includes('.mlp.experts.')) continue;
    tensors.set(spec.name, tensor(values(spec.name), [...spec.shape]));
  }
  const { hiddenSize: hidden, moeIntermediateSize: width, numExperts: experts } = config;
  for (const layer of moeLayerIndices(config)) {
    const gateUp = new Float32Array(experts * hidden * 2 * width);
    const down = new Float32Array(experts * width * hidden);
    for (let expert = 0; expert < experts; expert++) {
      const prefix = `model.layers.${layer}.mlp.experts.${expert}`;
      const gate = values(`${prefix}.gate_proj.weight`); // [width, hidden]
      const up = values(`${prefix}.up_proj.weight`); // [width, hidden]
      const downProj = values(`${prefix}.down_proj.weight`); // [hidden, width]
      for (let row = 0; row < width; row++) {
        for (let col = 0; col < hidden; col++) {
          const base = (expert * hidden + col) * 2 * width;
          gateUp[base + row] = gate[row * hidden + col]!;
          gateUp[base + width + row] = up[row * hidden + col]!;
        }
      }
      for (let row = 0; row < hidden; row++) {
        for (let col = 0; col < width; col++)
          down[(expert * width + col) * hidden + row] = downProj[row * width + col]!;
      }
    }
    const gateUpStack = tensor(gateUp, [experts, hidden, 2 * width]);
    const downStack = tensor(down, [experts, width, hidden]);
    tensors.set(STACKED_EXPERTS.gateUp(layer), gateUpStack);
    tensors.set(STACKED_EXPERTS.down(layer), downStack);
    for (let expert = 0; expert < experts; expert++) {
      tensors.set(STACKED_EXPERTS.expertGateUp(layer, expert), view(gateUpStack, expert, hidden, 2 * width));
      tensors.set(STACKED_EXPERTS.expertDown(layer, expert), view(downStack, expert, width, hidden));
    }
  }
  return tensors;
}

function float16Bits(values: Float32Array): Uint16Array {
  return fromFloat32(values, 'F16', [values.length]).data;
}

function roundToFloat16(values: Float32Array): Float32Array {
  return toFloat32(fromFloat32(values, 'F16', [values.length]));
}

/** `UNSUPPORTED` for a precision this engine has no kernels for. */
export function checkPrecision(precision: InferencePrecision): void {
  if (!SUPPORTED_PRECISIONS.includes(precision)) {
    throw new MoerlError(
      'UNSUPPORTED',
      `precision must be one of ${SUPPORTED_PRECISIONS.join(', ')}, found ${String(precision)}`,
      { details: { field: 'precision', found: precision, supported: SUPPORTED_PRECISIONS } },
    );
  }
}

const SUPPORTED_ACTIVATIONS: readonly ActivationPrecision[] = ['fp32', 'bf16'];
/** The weight precisions bf16 activations go with: a bf16 model, and FP8 weights with bf16 activations. */
const BF16_ACTIVATION_PRECISIONS: readonly InferencePrecision[] = ['bf16', 'fp8'];

/**
 * `INVALID_ARGUMENT` for an activation precision that is not `fp32` or `bf16`; `UNSUPPORTED` for `bf16` with
 * weights other than `bf16` or `fp8` (`fp16` computes in float16; `fp32` weights do not exist in a bf16
 * model).
 */
function checkActivations(activations: ActivationPrecision, precision: InferencePrecision): void {
  if (!SUPPORTED_ACTIVATIONS.includes(activations)) {
    throw new MoerlError(
      'INVALID_ARGUMENT',
      `activations must be one of ${SUPPORTED_ACTIVATIONS.join(', ')}, found ${String(activations)}`,
      { details: { field: 'activations', found: activations, supported: SUPPORTED_ACTIVATIONS } },
    );
  }
  if (activations === 'bf16' && !BF16_ACTIVATION_PRECISIONS.includes(precision)) {
    throw new MoerlError(
      'UNSUPPORTED',
      `activations bf16 needs precision ${BF16_ACTIVATION_PRECISIONS.join(' or ')}, found precision ${precision}`,
      {
        details: {
          field: 'activations',
          found: activations,
          precision,
          supported: BF16_ACTIVATION_PRECISIONS,
        },
      },
    );
  }
}

async function openSession(
  model: Uint8Array,
  options: MoeSessionOptions,
  runtime: LoadedOnnxRuntime,
): Promise<{ session: OrtSession; provider: ExecutionProvider }> {
  const { ort } = runtime;
  // onnxruntime-web's CPU provider is its WebAssembly build (`wasm`); it has no CUDA provider in Node.
  const cpu = runtime.name === 'onnxruntime-web' ? 'wasm' : 'cpu';
  const sessionOptions = (providers: string[]): OrtSessionOptions => ({
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    // Idle intra-op threads sleep instead of spinning: a spinning pool steals the cores that other sessions
    // (a second engine, the trainer) need, which costs far more than the wake-up latency it saves.
    extra: { session: { intra_op: { allow_spinning: options.allowSpinning === true ? '1' : '0' } } },
    ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
  });
  if (options.executionProvider === 'cuda') {
    try {
      return {
        session: await ort.InferenceSession.create(model, sessionOptions(['cuda'])),
        provider: 'cuda',
      };
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
      options.onFallback?.(
        `@moerl/backend-onnx: the CUDA execution provider is unavailable on ${runtime.name} (${reason}); running on CPU instead`,
      );
    }
  }
  return { session: await ort.InferenceSession.create(model, sessionOptions([cpu])), provider: 'cpu' };
}

/** An onnxruntime session over the MoE graph, with the weights held as input tensors. */
export async function createMoeSession(options: MoeSessionOptions): Promise<MoeSession> {
  const { config } = options;
  checkPrecision(options.precision);
  const activations = options.activations ?? 'fp32';
  checkActivations(activations, options.precision);
  const expertCompute = resolveExpertCompute(config, options.expertCompute);
  const runtime = await loadOnnxRuntime(options.runtime);
  const { ort } = runtime;
  let weights = weightTensors(config, options.weights, options.precision, options.fp8, ort);
  const { session, provider } = await openSession(
    encodeMoeModel(
      config,
      weightsAsInputs,
      'stacked-inputs',
      options.precision === 'fp16' ? 'float16' : 'float32',
      expertCompute,
      activations,
    ),
    options,
    runtime,
  );
  // The weights the graph takes: the expert stacks (dense) or the experts one by one (sparse).
  const graphInputs = new Set(session.inputNames);
  const layers = config.numLayers;
  const hasRouting = moeLayerIndices(config).length > 0;
  const int64 = (values: ArrayLike<number>, dims: number[]) =>
    new ort.Tensor(
      'int64',
      BigInt64Array.from(Array.from(values), (value) => BigInt(value)),
      dims,
    );
  const emptyKv = (batch: number): LayerKv[] =>
    Array.from({ length: layers }, () => ({
      key: { data: new Float32Array(0), dims: [batch, config.numKeyValueHeads, 0, config.headDim] },
      value: { data: new Float32Array(0), dims: [batch, config.numKeyValueHeads, 0, config.headDim] },
    }));
  const kvInput = (kv: KvTensor) => new ort.Tensor('float32', kv.data, [...kv.dims]);
  const kvOutput = (tensor: OrtTensor): KvTensor => ({
    data: tensor.data as Float32Array,
    dims: tensor.dims,
  });

  return {
    executionProvider: provider,
    activations,
    runtime,
    expertCompute,
    emptyKv,
    setWeights(next) {
      weights = weightTensors(config, next, options.precision, options.fp8, ort);
    },
    async forward(input) {
      if (input.batch * input.sequence !== 1) return withTwoLogitRows(input);
      // onnxruntime's Gemm takes a different kernel for a single row, whose sums round differently in the
      // last bit. Running one row as two identical ones keeps every position on the multi-row kernel, so a
      // position's KV and logits do not depend on how it was batched (cache on and off agree exactly). Both
      // rows' logits are asked for: the lm_head MatMul has the same one-row kernel (see withTwoLogitRows).
      const doubled = await run({
        batch: 2,
        sequence: 1,
        inputIds: [input.inputIds[0]!, input.inputIds[0]!],
        positionIds: [input.positionIds[0]!, input.positionIds[0]!],
        attentionBias: concatFloats(input.attentionBias, input.attentionBias),
        logitRows: [0, 1],
        past: (input.past ?? emptyKv(1)).map((layer) => ({
          key: doubleRow(layer.key),
          value: doubleRow(layer.value),
        })),
      });
      return {
        logits: doubled.logits.subarray(0, config.vocabSize),
        present: selectRows(doubled.present, [0]),
        routing: doubled.routing.subarray(0, doubled.routing.length / 2),
      };
    },
    async release() {
      await session.release();
    },
  };

  /**
   * The lm_head MatMul has the same one-row kernel, so a lone logit row (every prefill) is asked for twice:
   * then the logits of a position never depend on how many rows were computed beside it (a one-position
   * prefill after a cache hit, a decode step alone or in a batch).
   */
  async function withTwoLogitRows(input: ForwardInput): Promise<ForwardOutput> {
    if (input.logitRows.length !== 1) return run(input);
    const row = input.logitRows[0]!;
    const out = await run({ ...input, logitRows: [row, row] });
    return { ...out, logits: out.logits.subarray(0, config.vocabSize) };
  }

  async function run(input: ForwardInput): Promise<ForwardOutput> {
    const { batch, sequence } = input;
    const past = input.past ?? emptyKv(batch);
    const pastSlots = past[0]?.key.dims[2] ?? 0;
    const feeds: Record<string, OrtTensor> = {
      [GRAPH_IO.inputIds]: int64(input.inputIds, [batch, sequence]),
      [GRAPH_IO.positionIds]: int64(input.positionIds, [batch, sequence]),
      [GRAPH_IO.attentionBias]: new ort.Tensor('float32', input.attentionBias, [
        batch,
        sequence,
        pastSlots + sequence,
      ]),
      [GRAPH_IO.logitRows]: int64(input.logitRows, [input.logitRows.length]),
    };
    for (let layer = 0; layer < layers; layer++) {
      feeds[GRAPH_IO.pastKey(layer)] = kvInput(past[layer]!.key);
      feeds[GRAPH_IO.pastValue(layer)] = kvInput(past[layer]!.value);
    }
    for (const [name, tensor] of weights) if (graphInputs.has(name)) feeds[name] = tensor;
    const results = await session.run(feeds);
    const present: LayerKv[] = [];
    for (let layer = 0; layer < layers; layer++) {
      present.push({
        key: kvOutput(results[GRAPH_IO.presentKey(layer)]!),
        value: kvOutput(results[GRAPH_IO.presentValue(layer)]!),
      });
    }
    const routingTensor = hasRouting ? results[GRAPH_IO.routing] : undefined;
    const routing =
      routingTensor === undefined
        ? new Int32Array(0)
        : Int32Array.from(routingTensor.data as BigInt64Array, (value) => Number(value));
    return { logits: results[GRAPH_IO.logits]!.data as Float32Array, present, routing };
  }
}

function concatFloats(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** `[1, ...]` → `[2, ...]` with the row repeated. */
function doubleRow(tensor: KvTensor): KvTensor {
  return { data: concatFloats(tensor.data, tensor.data), dims: [2, ...tensor.dims.slice(1)] };
}
