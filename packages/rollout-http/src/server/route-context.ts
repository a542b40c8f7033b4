import type { GenerateRequest, RolloutEngine, SamplingParams, Trajectory } from '@moerl/core';
import { HttpError } from './http-plumbing.js';

/** Turns text into token ids and back; without one, the server accepts token ids only. */
export interface Tokenizer {
  encode(text: string): number[];
  decode(ids: readonly number[]): string;
}

/** What the server counts; routes add to `requests` and `generated`. */
export interface ServerCounters {
  requests: number;
  generated: number;
  badRequests: number;
  rejectedBusy: number;
}

/** Orders the work on one engine with a bound on how much may wait (`RequestBatcher`). */
export interface EngineScheduler {
  readonly pending: number;
  readonly maxPending: number;
  readonly isFull: boolean;
  readonly engineCalls: number;
  run(requests: readonly GenerateRequest[], params: SamplingParams): Promise<Trajectory[]>;
  /**
   * Counts as pending at once, runs `prepare` without holding the engine, then `task(prepared)` alone on
   * it, after everything queued by then (a weight update: read the checkpoint, then swap).
   */
  exclusiveAfter<P, T>(prepare: () => Promise<P>, task: (prepared: P) => Promise<T>): Promise<T>;
}

/** What every route of one server shares. */
export interface RouteContext {
  readonly engine: RolloutEngine;
  readonly tokenizer: Tokenizer | undefined;
  /** The server was started with routing on (`--enable-return-routed-experts`). */
  readonly returnRoutedExperts: boolean;
  readonly counters: ServerCounters;
  /** Generates through the scheduler (maybe merged with other calls); 503 (counted) when too much is waiting. */
  generate(requests: readonly GenerateRequest[], params: SamplingParams): Promise<Trajectory[]>;
  /**
   * `prepare` outside the engine queue, then `task(prepared)` alone on the engine, admitted (as pending)
   * before `prepare` starts; 503 (counted) when too much is waiting.
   */
  exclusiveAfter<P, T>(prepare: () => Promise<P>, task: (prepared: P) => Promise<T>): Promise<T>;
}

/** The context's engine access over a scheduler: a full scheduler answers 503 instead of waiting without bound. */
export function scheduledEngineAccess(
  scheduler: EngineScheduler,
  counters: ServerCounters,
): Pick<RouteContext, 'generate' | 'exclusiveAfter'> {
  const admit = () => {
    if (scheduler.isFull) {
      counters.rejectedBusy++;
      throw new HttpError(
        503,
        `server busy: ${scheduler.pending} requests pending (limit ${scheduler.maxPending})`,
      );
    }
  };
  return {
    generate: async (requests, params) => {
      admit();
      return scheduler.run(requests, params);
    },
    exclusiveAfter: async (prepare, task) => {
      admit();
      return scheduler.exclusiveAfter(prepare, task);
    },
  };
}
