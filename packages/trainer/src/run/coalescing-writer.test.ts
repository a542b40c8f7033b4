import { describe, expect, it } from 'vitest';
import { createCoalescingWriter } from './coalescing-writer.js';

/** A write that records its label when it starts and finishes once `release` is called. */
function controlledWrite(log: string[], label: string) {
  let release!: () => void;
  const done = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    write: async () => {
      log.push(`start ${label}`);
      await done;
      log.push(`end ${label}`);
    },
    release: () => release(),
  };
}

describe('createCoalescingWriter', () => {
  it('runs one write at a time and skips snapshots a newer one replaced', async () => {
    const writer = createCoalescingWriter();
    const log: string[] = [];
    const [a, b, c] = ['a', 'b', 'c'].map((label) => controlledWrite(log, label)) as [
      ReturnType<typeof controlledWrite>,
      ReturnType<typeof controlledWrite>,
      ReturnType<typeof controlledWrite>,
    ];
    writer.schedule(a.write);
    writer.schedule(b.write);
    writer.schedule(c.write);
    await Promise.resolve();
    expect(log).toEqual(['start a']);
    a.release();
    c.release();
    const flushed = writer.flush();
    await flushed;
    // b was waiting when c arrived, so only a and c ran, in order, never overlapping.
    expect(log).toEqual(['start a', 'end a', 'start c', 'end c']);
  });

  it('throws a failed write from the next schedule and from flush, and runs nothing after it', async () => {
    const writer = createCoalescingWriter();
    const log: string[] = [];
    writer.schedule(async () => {
      throw new Error('disk full');
    });
    await expect(writer.flush()).rejects.toThrow('disk full');
    expect(() => writer.schedule(async () => void log.push('later'))).toThrow('disk full');
    await expect(writer.flush()).rejects.toThrow('disk full');
    expect(log).toEqual([]);
  });

  it('flush resolves at once with nothing scheduled, and after writes scheduled while flushing', async () => {
    const writer = createCoalescingWriter();
    await writer.flush();
    const log: string[] = [];
    const first = controlledWrite(log, 'first');
    writer.schedule(first.write);
    const flushed = writer.flush();
    writer.schedule(async () => void log.push('second'));
    first.release();
    await flushed;
    expect(log).toEqual(['start first', 'end first', 'second']);
  });
});
