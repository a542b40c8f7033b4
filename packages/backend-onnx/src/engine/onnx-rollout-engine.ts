import {
  type Fp8WeightOptions,
  type GenerateRequest,
  type InferencePrecision,
  type ModelConfig,
  MoerlError,
  moeLayerIndices,
  type NamedTensors,
  type RolloutEngine,
  type RolloutEngineStats,
  resolveFp8WeightOptions,
  type SamplingParams,
  type Trajectory,
  validateModelConfig,
} from '@moerl/core';
import { createPrefixStore, type PrefixStoreImplementation } from '../cache/create-prefix-store.js';
import type { PrefixStore, PrefixStoreStats } from '../cache/prefix-store.js';
import type { ActivationPrecision, ExpertCompute } from '../model/build-moe-graph.js';
import { generateBatch, type PreparedRequest } from './generate-batch.js';
import {
  checkPrecision,
  createMoeSession,
  type ExecutionProvider,
  type ExpertComputeOption,
  SUPPORTED_PRECISIONS,
} from './moe-session.js';
import type { OnnxRuntimeName, OnnxRuntimeOption } from './ort-runtime.js';
import { checkRequest } from './validate-request.js';

export interface PrefixCacheOptions {
  /** Byte budget of cached KV; least recently used prefixes are evicted beyond it. Default 256 MiB. */
  readonly budgetBytes?: number;
  /** `router-cache` (default): @moerl/router-cache's radix cache; `simple`: a flat built-in list. */
  readonly implementation?: PrefixStoreImplementation;
}

export interface OnnxRolloutEngineOptions {
  readonly config: ModelConfig;
  readonly weights: NamedTensors;
  /** Stamped on trajectories until the next `updateWeights`. Default 0. */
  readonly weightVersion?: number;
  /**
   * The weights' precision, and with it the arithmetic:
   *
   * - `fp32` (default): float32 weights and arithmetic.
   * - `bf16`: weights rounded to bfloat16; arithmetic and activations float32 unless `activations: 'bf16'`.
   * - `fp16`: weights, activations and every MatMul/Gemm in float16 (the router's gate Linear included: its
   *   logits are float16); the float32 steps are RMSNorm's statistics, the RoPE angles, the attention softmax
   *   and the router's softmax, top-k and renormalisation, as HF runs half precision.
   * - `fp8`: attention and MLP projections fake-quantised to FP8 E4M3 with FP32 scales (`fp8` options), the
   *   other weights (router gate included) rounded to bfloat16; arithmetic and activations float32 unless
   *   `activations: 'bf16'`.
   */
  readonly precision?: InferencePrecision;
  /**
   * How activations are stored, orthogonal to the weights' precision. `fp32` (default): float32 throughout.
   * `bf16` (with `bf16` or `fp8` weights; `UNSUPPORTED` otherwise): as a bf16 engine (HF's eager Qwen3-MoE
   * in `torch.bfloat16`) computes: products accumulate in float32 and every activation HF stores as a bf16
   * tensor is rounded to bfloat16 where it is produced (residual stream, every Linear output including the
   * router logits and the LM head, RMSNorm, RoPE, attention scores/probabilities/output, SwiGLU, the weighted
   * expert outputs and their sum in ascending expert id), while RMSNorm statistics, the attention softmax and
   * the router's softmax, top-k and renormalisation run in float32. See `ActivationPrecision`.
   */
  readonly activations?: ActivationPrecision;
  /** Scales and exclusions of the `fp8` precision (default: 128×128 blocks, router gate kept in bf16). */
  readonly fp8?: Fp8WeightOptions;
  /** Reuse the KV and routing of cached prefixes. `true` (default) or options; `false` turns it off. */
  readonly prefixCache?: boolean | PrefixCacheOptions;
  /**
   * Which onnxruntime runs the graph. `auto` (default): `onnxruntime-node` (native; an optional peer
   * dependency) when it is installed and loads, else `onnxruntime-web` (its WebAssembly CPU build, a
   * dependency of this package; slower, see the README). `node` / `web`: that one, or `BACKEND_UNAVAILABLE`.
   * The engine says which it got (`runtime`, `runtimeSummary`).
   */
  readonly runtime?: OnnxRuntimeOption;
  /**
   * `cpu` (default) or `cuda`; CUDA falls back to CPU with a message when the runtime lacks it
   * (onnxruntime-web always, onnxruntime-node without its CUDA files).
   */
  readonly executionProvider?: ExecutionProvider;
  /**
   * How MoE layers compute their experts. `sparse`: the (position, k) pairs are grouped by expert and each
   * expert multiplies only its own positions, so cost follows the chosen experts. `dense`: every expert runs
   * on every position and the unchosen ones are weighted 0, so cost follows all experts. `auto` (default):
   * `sparse` unless the model routes to all its experts or its experts are tiny (hidden × moe width < 4096),
   * where one batched MatMul beats a MatMul per expert. Both give the same routing and logits within float32
   * rounding, and each is batch invariant on its own.
   */
  readonly expertCompute?: ExpertComputeOption;
  /** onnxruntime's intra-op thread count; default: onnxruntime's choice. */
  readonly intraOpNumThreads?: number;
  /**
   * Let idle onnxruntime threads spin-wait for the next operator. Default false: spinning threads take the
   * cores other work needs (a second engine, the trainer); turn it on for a machine of its own.
   */
  readonly allowSpinning?: boolean;
  /** Receives warnings such as the CUDA fallback. Default `console.warn`. */
  readonly onWarning?: (message: string) => void;
}

/** A trajectory of the ONNX engine, with how many of its prompt tokens the prefix cache supplied. */
export interface OnnxTrajectory extends Trajectory {
  readonly cachedPromptTokens: number;
}

export interface OnnxRolloutEngine extends RolloutEngine {
  generate(requests: readonly GenerateRequest[], samplingParams: SamplingParams): Promise<OnnxTrajectory[]>;
  readonly precision: InferencePrecision;
  /** How activations are stored (`fp32` or `bf16`). */
  readonly activations: ActivationPrecision;
  /** How MoE layers compute their experts (`auto` resolved). */
  readonly expertCompute: ExpertCompute;
  /** The provider the session actually runs on. */
  readonly executionProvider: ExecutionProvider;
  /** The onnxruntime package the session runs on. */
  readonly runtime: OnnxRuntimeName;
  /**
   * One line saying which runtime runs the engine and why better ones were skipped, e.g.
   * `onnx runtime: onnxruntime-web 1.30.0 (WebAssembly CPU; skipped onnxruntime-node: not installed)`.
   */
  readonly runtimeSummary: string;
  /** Which prefix cache is in use, or `off`. */
  readonly prefixCacheImplementation: PrefixStoreImplementation | 'off';
  /** The prefix cache's counters; undefined when the cache is off. */
  prefixCacheStats(): PrefixStoreStats | undefined;
}

export const ONNX_BACKEND_NAME = 'onnx';
const DEFAULT_CACHE_BUDGET = 256 * 1024 * 1024;

function checkVersion(version: unknown, field: string): number {
  if (!Number.isSafeInteger(version)) {
    throw new MoerlError('INVALID_ARGUMENT', `${field} must be a safe integer, found ${String(version)}`, {
      details: { field, found: version },
    });
  }
  return version as number;
}

/**
 * The rollout engine on onnxruntime (onnxruntime-node when installed, else onnxruntime-web): builds the MoE graph for `config`, samples with a KV cache,
 * records every position's experts and reuses cached prefixes (KV and routing). See the README for the
 * conventions (logprobs at the sampling temperature, routing of prompt + response − 1 positions).
 */
export async function createOnnxRolloutEngine(options: OnnxRolloutEngineOptions): Promise<OnnxRolloutEngine> {
  const { config } = options;
  validateModelConfig(config);
  const precision = options.precision ?? 'fp32';
  checkPrecision(precision);
  let weightVersion = checkVersion(options.weightVersion ?? 0, 'weightVersion');
  const warn = options.onWarning ?? ((message: string) => console.warn(message));
  const session = await createMoeSession({
    config,
    weights: options.weights,
    precision,
    ...(options.activations === undefined ? {} : { activations: options.activations }),
    ...(options.fp8 === undefined ? {} : { fp8: resolveFp8WeightOptions(options.fp8) }),
    executionProvider: options.executionProvider ?? 'cpu',
    ...(options.runtime === undefined ? {} : { runtime: options.runtime }),
    ...(options.expertCompute === undefined ? {} : { expertCompute: options.expertCompute }),
    ...(options.intraOpNumThreads === undefined ? {} : { intraOpNumThreads: options.intraOpNumThreads }),
    ...(options.allowSpinning === undefined ? {} : { allowSpinning: options.allowSpinning }),
    onFallback: warn,
  });
  const moeLayers = moeLayerIndices(config).length;
  const cacheOptions = options.prefixCache ?? true;
  let store: PrefixStore | undefined;
  let implementation: OnnxRolloutEngine['prefixCacheImplementation'] = 'off';
  if (cacheOptions !== false) {
    const settings = cacheOptions === true ? {} : cacheOptions;
    // @moerl/router-cache requires topK ≥ 1, so a dense model (no routing to keep) uses the simple store.
    implementation = moeLayers === 0 ? 'simple' : (settings.implementation ?? 'router-cache');
    store = createPrefixStore(
      {
        moeLayers,
        topK: config.topK,
        numExperts: config.numExperts,
        budgetBytes: settings.budgetBytes ?? DEFAULT_CACHE_BUDGET,
      },
      implementation,
    );
  }
  // Counts weight updates; the cache's version only moves forward, while callers may reuse or lower theirs.
  let cacheEpoch = 0;
  const counters = {
    requests: 0,
    promptTokens: 0,
    generatedTokens: 0,
    cachedPromptTokens: 0,
    generateSeconds: 0,
    prefillSeconds: 0,
  };
  let disposed = false;
  // One call at a time: calls share the session's weights and the prefix cache.
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(work);
    queue = result.catch(() => undefined);
    return result;
  };
  const assertOpen = () => {
    if (disposed) throw new MoerlError('INVALID_ARGUMENT', 'The ONNX rollout engine was disposed');
  };

  return {
    specificationVersion: 'v1',
    backendName: ONNX_BACKEND_NAME,
    capabilities: {
      recordRouting: true,
      prefixCache: store !== undefined,
      batchedGeneration: true,
      precisions: SUPPORTED_PRECISIONS,
      seedFork: true,
    },
    config,
    precision,
    activations: session.activations,
    expertCompute: session.expertCompute,
    executionProvider: session.executionProvider,
    runtime: session.runtime.name,
    runtimeSummary: session.runtime.summary,
    prefixCacheImplementation: implementation,
    prefixCacheStats: () => store?.stats(),

    generate(requests, samplingParams) {
      return exclusive(async () => {
        assertOpen();
        if (!Array.isArray(requests)) {
          throw new MoerlError('INVALID_ARGUMENT', `requests must be an array, found ${String(requests)}`);
        }
        // Every request is checked before any work, so a bad one leaves the engine and the others untouched.
        const prepared: PreparedRequest[] = requests.map((request, index) => {
          const params: SamplingParams = { ...samplingParams, ...request?.samplingParams };
          checkRequest(config, request, params, index);
          return { request, params, seedFork: request.seedFork ?? index };
        });
        const started = performance.now();
        const version = weightVersion;
        const generated = await generateBatch(
          { config, session, moeLayers, store, timing: counters },
          prepared,
        );
        counters.generateSeconds += (performance.now() - started) / 1000;
        counters.requests += generated.length;
        return generated.map((sequence): OnnxTrajectory => {
          counters.promptTokens += sequence.request.promptIds.length;
          counters.generatedTokens += sequence.responseIds.length;
          counters.cachedPromptTokens += sequence.cachedPromptTokens;
          return {
            id: sequence.request.id,
            groupId: sequence.request.groupId,
            promptIds: Int32Array.from(sequence.request.promptIds),
            responseIds: sequence.responseIds,
            engineLogprobs: sequence.logprobs,
            routing: { ...sequence.routing, weightVersion: version },
            finishReason: sequence.finishReason,
            weightVersion: version,
            cachedPromptTokens: sequence.cachedPromptTokens,
          };
        });
      });
    },

    updateWeights(weights, version) {
      return exclusive(async () => {
        assertOpen();
        const next = checkVersion(version, 'version');
        session.setWeights(weights);
        weightVersion = next;
        // Nothing computed under the old weights may be reused, even when the version number repeats.
        store?.setWeightVersion(++cacheEpoch);
      });
    },

    stats(): RolloutEngineStats {
      return { ...counters, weightVersion };
    },

    dispose() {
      return exclusive(async () => {
        if (disposed) return;
        disposed = true;
        await session.release();
      });
    },
  };
}
