import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tinyRun } from '../__fixtures__/tiny-run.js';
import { resolveRunConfig } from '../config/resolve-run-config.js';
import { trainRun } from '../run/train-run.js';
import { createGuessNumberTask, higherLowerEnvironment } from './guess-number-task.js';

describe('guess-number', () => {
  it('answers each guess with < or >, and rewards the right one', () => {
    const game = higherLowerEnvironment.reset({ prompt: '#0001?', answer: '17' });
    const info = { turn: 1, finishReason: 'stop' as const };
    expect(higherLowerEnvironment.step(game, '31', info)).toEqual({ observation: '<', done: false });
    expect(higherLowerEnvironment.step(game, '9', info)).toEqual({ observation: '>', done: false });
    expect(higherLowerEnvironment.step(game, '17', info)).toEqual({ done: true, reward: 1, correct: true });
    expect(higherLowerEnvironment.step(game, 'x', info)).toEqual({ done: true, reward: 0, correct: false });
  });

  it('demonstrates a binary search that finds every secret within the turns allowed, consistent with the replies', () => {
    for (let secret = 0; secret <= 63; secret++) {
      const { turns, observations } = higherLowerEnvironment.demonstrate!({
        prompt: '#0001?',
        answer: String(secret),
      });
      expect(turns.length).toBeLessThanOrEqual(higherLowerEnvironment.maxTurns);
      expect(turns.at(-1)).toBe(String(secret));
      // Replaying the demonstration against the environment gives its observations, then the reward.
      const game = higherLowerEnvironment.reset({ prompt: '#0001?', answer: String(secret) });
      turns.forEach((turn, index) => {
        const reply = higherLowerEnvironment.step(game, turn, { turn: index + 1, finishReason: 'stop' });
        if (index < turns.length - 1)
          expect(reply).toEqual({ observation: observations[index], done: false });
        else expect(reply.reward).toBe(1);
      });
    }
  });

  it('tells games apart by number, never by secret', () => {
    const task = createGuessNumberTask();
    expect(task.environment?.name).toBe('higher-lower');
    expect(task.tokenizer.encode('#0042?')).toHaveLength(6);
  });

  it('trains: several turns a game, observations between them', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-guess-'));
    try {
      const config = await resolveRunConfig({
        config: {
          ...tinyRun,
          replay: 'R3',
          task: { name: 'guess-number' },
          train: { ...tinyRun.train, steps: 2 },
        },
      });
      const result = await trainRun({ config, directory });
      for (const row of result.metrics) {
        expect(row.environmentErrors).toBe(0);
        expect(row.turnsPerEpisode).toBeGreaterThanOrEqual(1);
        expect(row.turnsPerEpisode).toBeLessThanOrEqual(7);
        expect(Number.isFinite(row.klReplay)).toBe(true);
      }
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
