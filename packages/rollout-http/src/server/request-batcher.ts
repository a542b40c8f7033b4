import {
  type GenerateRequest,
  MoerlError,
  type RolloutEngine,
  type SamplingParams,
  type Trajectory,
} from '@moerl/core';

export interface RequestBatcherOptions {
  /** Calls (generate or exclusive) that may wait or run at once; `isFull` from there on. */
  readonly maxPending: number;
  /**
   * Most requests one merged engine call carries. Waiting calls join in arrival order until the next one
   * would pass this; a single call larger than this still runs, on its own. Default 256.
   */
  readonly maxBatchRequests?: number;
}

interface GenerateJob {
  readonly kind: 'generate';
  readonly requests: readonly GenerateRequest[];
  readonly params: SamplingParams;
  resolve(trajectories: Trajectory[]): void;
  reject(error: unknown): void;
}

interface ExclusiveJob {
  readonly kind: 'exclusive';
  readonly task: () => Promise<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

type Job = GenerateJob | ExclusiveJob;

const DEFAULT_MAX_BATCH_REQUESTS = 256;

function checkPositiveInteger(value: unknown, field: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new MoerlError('INVALID_ARGUMENT', `${field} must be a positive integer, found ${String(value)}`, {
      details: { field, found: value },
    });
  }
  return value as number;
}

/** Prefixes a request's id in a merged call, so ids that repeat across calls stay unique; removed after. */
const callPrefix = (call: number) => `${call}/`;

/**
 * The queue in front of a server's RolloutEngine: it merges concurrent calls into one engine batch. Calls
 * that arrive while the engine is busy wait; when it is free, the waiting calls (up to `maxBatchRequests`
 * requests) go as one `engine.generate`, each request carrying its call's sampling
 * params and `seedFork` = its position in its own call (unless it set one). Every request then samples
 * from the same sampler as in its own call; on a batch-invariant engine (backend-onnx and testkit's
 * reference engine are) it gets exactly the same tokens, logprobs and routing. The results are split back
 * per call, with the original ids. One engine call runs at a time; exclusive tasks (weight updates) run
 * alone between them.
 *
 * An engine that does not claim `capabilities.seedFork` gets one call at a time, unchanged, as with
 * a serial queue. When a merged call throws, each of its calls is retried on its own, in order, so one
 * bad request fails only the call it came in (the others pay for one failed attempt). Anything else that
 * throws while a batch is taken or run fails that batch's calls, and the queue goes on with the next.
 */
export class RequestBatcher {
  readonly maxPending: number;
  readonly maxBatchRequests: number;
  readonly #engine: RolloutEngine;
  readonly #waiting: Job[] = [];
  #pending = 0;
  #engineCalls = 0;
  #busy = false;
  #drainScheduled = false;

  constructor(engine: RolloutEngine, options: RequestBatcherOptions) {
    this.#engine = engine;
    this.maxPending = checkPositiveInteger(options.maxPending, 'maxPending');
    this.maxBatchRequests = checkPositiveInteger(
      options.maxBatchRequests ?? DEFAULT_MAX_BATCH_REQUESTS,
      'maxBatchRequests',
    );
  }

  /** `engine.generate` calls made so far (fewer than the calls answered when merging happens). */
  get engineCalls(): number {
    return this.#engineCalls;
  }

  /** Calls waiting or running. */
  get pending(): number {
    return this.#pending;
  }

  /** Callers check this first and answer 503, so run() never throws for a full queue in the server. */
  get isFull(): boolean {
    return this.#pending >= this.maxPending;
  }

  /** Generates `requests` with `params`, possibly in one engine call with other callers' requests. */
  run(requests: readonly GenerateRequest[], params: SamplingParams): Promise<Trajectory[]> {
    return this.#enqueue<Trajectory[]>((resolve, reject) => ({
      kind: 'generate',
      requests,
      params,
      resolve,
      reject,
    }));
  }

  /**
   * Runs `task` alone on the engine, after every call queued before it and before every call queued after
   * it (a weight update: earlier calls sample with the old weights, later ones with the new).
   */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return this.#enqueue<T>(this.#exclusiveJob(task));
  }

  /**
   * Counts a call as pending from now, runs `prepare` outside the queue (the engine goes on generating
   * meanwhile), then queues `task(prepared)` as `exclusive` does, behind the calls queued by then. A weight
   * update reads its checkpoint this way: admitted first, so `maxPending` bounds the reads in flight.
   */
  exclusiveAfter<P, T>(prepare: () => Promise<P>, task: (prepared: P) => Promise<T>): Promise<T> {
    this.#admit();
    const result = Promise.resolve()
      .then(prepare)
      .then((prepared) => this.#queue<T>(this.#exclusiveJob(() => task(prepared))));
    return this.#releaseWhenSettled(result);
  }

  #exclusiveJob<T>(
    task: () => Promise<T>,
  ): (resolve: (value: T) => void, reject: (error: unknown) => void) => Job {
    return (resolve, reject) => ({
      kind: 'exclusive',
      task,
      resolve: resolve as (value: unknown) => void,
      reject,
    });
  }

  #enqueue<T>(make: (resolve: (value: T) => void, reject: (error: unknown) => void) => Job): Promise<T> {
    this.#admit();
    return this.#releaseWhenSettled(this.#queue(make));
  }

  #admit(): void {
    if (this.isFull) {
      throw new MoerlError('INVALID_ARGUMENT', `queue full: ${this.#pending} calls pending`, {
        details: { pending: this.#pending, maxPending: this.maxPending },
      });
    }
    this.#pending++;
  }

  #releaseWhenSettled<T>(result: Promise<T>): Promise<T> {
    return result.finally(() => {
      this.#pending--;
    });
  }

  #queue<T>(make: (resolve: (value: T) => void, reject: (error: unknown) => void) => Job): Promise<T> {
    const result = new Promise<T>((resolve, reject) => {
      this.#waiting.push(make(resolve, reject));
    });
    this.#scheduleDrain();
    return result;
  }

  // Deferred by a microtask so calls made in the same synchronous turn can share the first batch.
  #scheduleDrain(): void {
    if (this.#busy || this.#drainScheduled) return;
    this.#drainScheduled = true;
    queueMicrotask(() => {
      this.#drainScheduled = false;
      void this.#drain();
    });
  }

  // Never rejects: whatever throws outside the per-job handlers fails the jobs taken off the queue for
  // this round (settling a settled job is a no-op), and the loop goes on, so no caller waits forever.
  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    while (this.#waiting.length > 0) {
      const taken: Job[] = [];
      try {
        await this.#runNext(taken);
      } catch (error) {
        for (const job of taken) job.reject(error);
      }
    }
    this.#busy = false;
  }

  /** Takes the next exclusive task or batch of generate calls off the queue (into `taken`) and runs it. */
  async #runNext(taken: Job[]): Promise<void> {
    const head = this.#waiting.shift()!;
    taken.push(head);
    if (head.kind === 'exclusive') {
      // Through a promise, so a task that throws synchronously rejects its caller and not the loop.
      await Promise.resolve().then(head.task).then(head.resolve, head.reject);
      return;
    }
    const batch = [head];
    this.#takeMore(batch, taken);
    await this.#generate(batch);
  }

  /** Adds to `batch` the waiting generate calls that go with it in one engine call. */
  #takeMore(batch: GenerateJob[], taken: Job[]): void {
    if (this.#engine.capabilities.seedFork !== true) return;
    let requests = batch[0]!.requests.length;
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (next.kind !== 'generate' || requests + next.requests.length > this.maxBatchRequests) break;
      requests += next.requests.length;
      this.#waiting.shift();
      taken.push(next);
      batch.push(next);
    }
  }

  async #generate(batch: readonly GenerateJob[]): Promise<void> {
    if (batch.length === 1) return this.#generateAlone(batch[0]!);
    let split: Trajectory[][];
    try {
      split = await this.#generateMerged(batch);
    } catch {
      // Which call's request broke the merged call is unknown, so each call runs on its own: exactly the
      // outcome it would have had in a serial queue.
      for (const job of batch) await this.#generateAlone(job);
      return;
    }
    batch.forEach((job, call) => {
      job.resolve(split[call]!);
    });
  }

  async #generateAlone(job: GenerateJob): Promise<void> {
    // A task, not a direct call, so a synchronous throw from the engine rejects the job too.
    this.#engineCalls++;
    await Promise.resolve()
      .then(() => this.#engine.generate(job.requests, job.params))
      .then(job.resolve, job.reject);
  }

  async #generateMerged(batch: readonly GenerateJob[]): Promise<Trajectory[][]> {
    const merged: GenerateRequest[] = batch.flatMap((job, call) =>
      job.requests.map((request, index) => ({
        ...request,
        id: `${callPrefix(call)}${request.id}`,
        samplingParams: { ...job.params, ...request.samplingParams },
        seedFork: request.seedFork ?? index,
      })),
    );
    this.#engineCalls++;
    const trajectories = await this.#engine.generate(merged, batch[0]!.params);
    if (!Array.isArray(trajectories) || trajectories.length !== merged.length) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `engine.generate must return one trajectory per request: expected ${merged.length}, found ${
          Array.isArray(trajectories) ? trajectories.length : String(trajectories)
        }`,
      );
    }
    let offset = 0;
    return batch.map((job, call) => {
      const prefix = callPrefix(call);
      const own = trajectories.slice(offset, offset + job.requests.length);
      offset += job.requests.length;
      return own.map((trajectory) =>
        trajectory.id.startsWith(prefix)
          ? { ...trajectory, id: trajectory.id.slice(prefix.length) }
          : trajectory,
      );
    });
  }
}
