import { createRandom } from '@moerl/core';
import type { TaskExample } from './task.js';

const NAMES = ['Ana', 'Ben', 'Cleo', 'Dev', 'Eva', 'Finn', 'Gus', 'Hana'];
const ITEMS = ['apple', 'book', 'coin', 'card', 'pen', 'shell', 'stamp', 'marble'];

/**
 * Arithmetic word problems (add, take away, multiply) with numeric answers: the small dataset moerl ships
 * for JSONL tasks (`data/word-problems*.jsonl` are this generator's output, checked by a test).
 */
export function wordProblems(count: number, seed: number): TaskExample[] {
  const random = createRandom(seed).fork('word-problems');
  const pick = <T>(values: readonly T[]) => values[random.nextInt(values.length)]!;
  return Array.from({ length: count }, () => {
    const name = pick(NAMES);
    const item = pick(ITEMS);
    const kind = random.nextInt(3);
    if (kind === 0) {
      const a = 2 + random.nextInt(48);
      const b = 2 + random.nextInt(48);
      return {
        prompt: `${name} has ${a} ${item}s and gets ${b} more. How many ${item}s now?`,
        answer: String(a + b),
      };
    }
    if (kind === 1) {
      const a = 10 + random.nextInt(90);
      const b = 1 + random.nextInt(a - 1);
      return {
        prompt: `${name} has ${a} ${item}s and gives away ${b}. How many ${item}s are left?`,
        answer: String(a - b),
      };
    }
    const a = 2 + random.nextInt(8);
    const b = 2 + random.nextInt(8);
    return {
      prompt: `${name} fills ${a} bags with ${b} ${item}s each. How many ${item}s in all?`,
      answer: String(a * b),
    };
  });
}

/** The JSONL text of `examples`, one object a line. */
export function toJsonl(examples: readonly TaskExample[]): string {
  return `${examples.map((example) => JSON.stringify(example)).join('\n')}\n`;
}
