import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { trainRun } from '../run/train-run.js';
import { calculatorEnvironment, createMultiplyToolTask } from './multiply-tool-task.js';

const example = { prompt: '37*46=', answer: '1702' };
const step = (turn: string, index: number) =>
  calculatorEnvironment.step(example, turn, { turn: index, finishReason: 'stop' });

describe('multiply-tool', () => {
  it('answers a first-turn tool call with the product, and rewards only the right final answer', () => {
    expect(step('c37*46', 1)).toEqual({ observation: '=1702', done: false, toolCall: true });
    expect(step('c12*3', 1)).toEqual({ observation: '=36', done: false, toolCall: true });
    expect(step('1702', 1)).toEqual({ done: true, reward: 1, correct: true });
    expect(step('1703', 2)).toEqual({ done: true, reward: 0, correct: false });
    // One call at most: a second is a (wrong) answer.
    expect(step('c37*46', 2)).toEqual({ done: true, reward: 0, correct: false });
  });

  it('demonstrates the tool on about a third of the problems and a direct answer on the rest', () => {
    const task = createMultiplyToolTask();
    let withTool = 0;
    for (let a = 10; a < 100; a++) {
      for (let b = 10; b < 100; b++) {
        const demo = calculatorEnvironment.demonstrate!({ prompt: `${a}*${b}=`, answer: String(a * b) });
        if (demo.turns.length === 2) {
          withTool++;
          expect(demo).toEqual({ turns: [`c${a}*${b}`, String(a * b)], observations: [`=${a * b}`] });
        } else expect(demo).toEqual({ turns: [String(a * b)], observations: [] });
      }
    }
    expect(withTool / task.problemCount!).toBeCloseTo(0.3, 1);
  });

  it('warm-starts on the demonstrations, evaluates whole conversations, and trains with R3', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-tool-'));
    try {
      const config = await resolveRunConfig({
        config: {
          ...tinyRun,
          replay: 'R3',
          task: { name: 'multiply-tool' },
          train: { ...tinyRun.train, steps: 2 },
        },
      });
      const result = await trainRun({ config, directory });
      expect(Number.isFinite(result.initialEvalAccuracy)).toBe(true);
      for (const row of result.metrics) {
        expect(row.environmentErrors).toBe(0);
        expect(row.turnsPerEpisode).toBeGreaterThanOrEqual(1);
        expect(row.turnsPerEpisode).toBeLessThanOrEqual(2);
        // A second turn happens exactly when the first was a calculator call.
        expect(row.toolCallsPerEpisode).toBeCloseTo(row.turnsPerEpisode! - 1, 12);
        expect(Number.isFinite(row.loss)).toBe(true);
      }
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
