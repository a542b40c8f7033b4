import type { FinishReason, ModelConfig, RoutingRecord, SamplingParams } from '@moerl/core';
import type { WeightVersionSpan } from '../protocols/sglang.js';

/** One HTTP call as the engine plans it: `requestIds.length` samples of one prompt. */
export interface ProtocolCall {
  readonly config: ModelConfig;
  /** One per sample, in sample order; the first names the call in errors. */
  readonly requestIds: readonly string[];
  readonly promptIds: Int32Array;
  readonly params: SamplingParams;
  /** Undefined when seeds are not sent. */
  readonly seed: number | undefined;
  /** Routing rows the client already holds: the server is asked for rows from here on. */
  readonly startLen: number;
  /** The held rows, for protocols that fill rows the server left out (older vLLM's −1 rows). */
  readonly heldRouting: RoutingRecord | undefined;
  readonly compactRouting: boolean;
}

/** One sample of a call's answer; `routing` holds rows `[startLen, prompt + output − 1)` over MoE layers. */
export interface ProtocolGeneration {
  readonly outputIds: Int32Array;
  readonly logprobs: Float32Array;
  readonly finishReason: FinishReason;
  /** The server's weight version; undefined when the protocol carries none (vLLM). */
  readonly weightVersion: string | undefined;
  readonly weightVersionSpans: readonly WeightVersionSpan[];
  readonly routing: RoutingRecord;
}

/** How one server dialect asks for samples with routing and reads the answer. */
export interface ClientProtocol {
  readonly name: 'sglang' | 'vllm';
  /** Appended to each base URL. */
  readonly path: string;
  /** Named in ROUTING_MISSING errors: what the server must be started with. */
  readonly routingFlag: string;
  body(call: ProtocolCall): unknown;
  decode(json: unknown, call: ProtocolCall): ProtocolGeneration[];
  /** Characters of routing text in a response, for the wire statistics. */
  routingChars(json: unknown): number;
}
