import { MoerlError } from '@moerl/core';

/**
 * Runs tasks one at a time, in arrival order, with a bound on how many may wait. Engine calls are
 * serialised so that a request's samples never depend on which other requests arrived with it.
 */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(readonly maxPending: number) {}

  get pending(): number {
    return this.#pending;
  }

  /** Callers check this first and answer 503, so run() never throws for a full queue in the server. */
  get isFull(): boolean {
    return this.#pending >= this.maxPending;
  }

  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.isFull) {
      throw new MoerlError('INVALID_ARGUMENT', `queue full: ${this.#pending} tasks pending`, {
        details: { pending: this.#pending },
      });
    }
    this.#pending++;
    const result = this.#tail.then(task);
    this.#tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result.finally(() => {
      this.#pending--;
    });
  }
}
