import { MoerlError } from '@moerl/core';

export type Balancing = 'least-loaded' | 'round-robin';

/**
 * Hands out server slots: at most `maxInFlight` requests per server, picked least-loaded (ties in turn) or
 * strictly in turn. Waiters are served first come, first served.
 */
export class ServerPool {
  readonly #inFlight: number[];
  readonly #waiters: Array<(server: number) => void> = [];
  #next = 0;

  constructor(
    readonly urls: readonly string[],
    readonly maxInFlight: number,
    readonly balancing: Balancing,
  ) {
    if (urls.length === 0) {
      throw new MoerlError('INVALID_ARGUMENT', 'servers: expected at least one base URL, found none');
    }
    if (!Number.isInteger(maxInFlight) || maxInFlight < 1) {
      throw new MoerlError(
        'INVALID_ARGUMENT',
        `maxConcurrentPerServer: expected a positive integer, found ${maxInFlight}`,
      );
    }
    this.#inFlight = urls.map(() => 0);
  }

  inFlight(server: number): number {
    return this.#inFlight[server]!;
  }

  /** Resolves with a server index once one has a free slot; call `release` with it when done. */
  acquire(): Promise<number> {
    const server = this.#pick();
    if (server !== undefined) {
      this.#inFlight[server]!++;
      return Promise.resolve(server);
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  release(server: number): void {
    this.#inFlight[server]!--;
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    const next = this.#pick();
    // A slot was just freed, so one exists.
    this.#inFlight[next!]!++;
    waiter(next!);
  }

  #pick(): number | undefined {
    const count = this.urls.length;
    let best: number | undefined;
    for (let step = 0; step < count; step++) {
      const server = (this.#next + step) % count;
      const load = this.#inFlight[server]!;
      if (load >= this.maxInFlight) continue;
      if (this.balancing === 'round-robin') {
        best = server;
        break;
      }
      if (best === undefined || load < this.#inFlight[best]!) best = server;
    }
    if (best !== undefined) this.#next = (best + 1) % count;
    return best;
  }
}
