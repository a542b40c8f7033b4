import { MoerlError, type SeededRandom } from '@moerl/core';
import type { Task, TaskExample } from './task.js';

/** Draws training problems that are never in the held-out evaluation set. */
export function sampleTrainingExamples(
  task: Task,
  count: number,
  random: SeededRandom,
  heldOut: ReadonlySet<string>,
): TaskExample[] {
  const examples: TaskExample[] = [];
  let rejected = 0;
  while (examples.length < count) {
    const example = task.generate(random);
    if (!heldOut.has(example.prompt)) {
      examples.push(example);
      continue;
    }
    // A task whose every problem is held out would loop forever.
    if (++rejected > 1000 + 100 * count) {
      throw new MoerlError(
        'CONFIG_INVALID',
        `Task "${task.name}" keeps generating held-out problems; use a smaller evaluation set or a larger task`,
        { details: { field: 'eval.size', task: task.name } },
      );
    }
  }
  return examples;
}
