import type { Environment } from './environment.js';
import { defineTask, type Task, type TaskExample } from './task.js';

interface Game {
  readonly secret: number;
  low: number;
  high: number;
}

const MAX = 63;

/**
 * Higher or lower: each turn the model guesses a number in [0, 63]; the environment answers `<` (the secret
 * is smaller) or `>` (larger) until the guess is right. Reward 1 for finding it within the turns allowed:
 * every reply carries information the next guess needs.
 */
export const higherLowerEnvironment: Environment<Game> = {
  name: 'higher-lower',
  maxTurns: 7,
  maxObservationTokens: 1,
  reset: (example) => ({ secret: Number(example.answer), low: 0, high: MAX }),
  step(game, turn) {
    const guess = /^\d{1,2}$/.test(turn) ? Number(turn) : Number.NaN;
    if (guess === game.secret) return { done: true, reward: 1, correct: true };
    if (Number.isNaN(guess)) return { done: true, reward: 0, correct: false };
    return { observation: game.secret < guess ? '<' : '>', done: false };
  },
  // Binary search: at most ⌈log2 64⌉ + 1 = 7 guesses.
  demonstrate(example) {
    const secret = Number(example.answer);
    const turns: string[] = [];
    const observations: string[] = [];
    let low = 0;
    let high = MAX;
    for (;;) {
      const guess = Math.floor((low + high) / 2);
      turns.push(String(guess));
      if (guess === secret) break;
      observations.push(secret < guess ? '<' : '>');
      if (secret < guess) high = guess - 1;
      else low = guess + 1;
    }
    return { turns, observations };
  },
};

/**
 * `#4821?`: find the secret number of game 4821 by guessing, told `<` or `>` after each wrong guess. The
 * game number only tells games apart (held-out games are other numbers); it says nothing of the secret.
 */
export function createGuessNumberTask(): Task {
  return defineTask({
    name: 'guess-number',
    description: 'find a secret number in [0, 63], told "<" or ">" after each guess (up to 7 guesses)',
    alphabet: '0123456789<>#?',
    answerAlphabet: '0123456789',
    maxPromptLength: 6,
    maxAnswerLength: 2,
    problemCount: 10_000 * 64,
    generate(random): TaskExample {
      return {
        prompt: `#${String(random.nextInt(10_000)).padStart(4, '0')}?`,
        answer: String(random.nextInt(MAX + 1)),
      };
    },
    environment: higherLowerEnvironment as Environment,
  });
}
