/**
 * Background writes of files rewritten whole at every step (metrics, sample logs), so that a step does not
 * wait for their fsyncs: each scheduled write runs after the one in flight, and a write scheduled while
 * another is still waiting replaces it (the newer snapshot contains the older one). A failed write is
 * thrown by the next `schedule` or `flush`, and no later write runs.
 */
export interface CoalescingWriter {
  /** Queues `write` (a whole snapshot); throws the error of an earlier write that failed. */
  schedule(write: () => Promise<void>): void;
  /** Resolves once every scheduled write is done; throws the first failure. */
  flush(): Promise<void>;
}

export function createCoalescingWriter(): CoalescingWriter {
  let running: Promise<void> | undefined;
  let pending: (() => Promise<void>) | undefined;
  let failed: { error: unknown } | undefined;
  const pump = async () => {
    while (pending !== undefined && failed === undefined) {
      const write = pending;
      pending = undefined;
      try {
        await write();
      } catch (error) {
        failed = { error };
      }
    }
    pending = undefined;
    running = undefined;
  };
  return {
    schedule(write) {
      if (failed !== undefined) throw failed.error;
      pending = write;
      running ??= pump();
    },
    async flush() {
      while (running !== undefined) await running;
      if (failed !== undefined) throw failed.error;
    },
  };
}
