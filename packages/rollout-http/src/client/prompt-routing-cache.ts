import type { RoutingRecord } from '@moerl/core';

interface Entry {
  readonly weightVersion: string;
  readonly routing: RoutingRecord;
}

/**
 * The routing rows of prompts already fetched, keyed by prompt tokens and the server's weight version, so
 * later samples of the same prompt ask only for new rows. Least recently used entries go first.
 */
export class PromptRoutingCache {
  readonly #entries = new Map<string, Entry>();
  hits = 0;

  constructor(readonly maxEntries: number) {}

  static keyOf(promptIds: Int32Array): string {
    return promptIds.join(',');
  }

  get(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.hits++;
      this.#entries.delete(key);
      this.#entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, weightVersion: string, routing: RoutingRecord): void {
    if (this.maxEntries <= 0) return;
    this.#entries.delete(key);
    this.#entries.set(key, { weightVersion, routing });
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
