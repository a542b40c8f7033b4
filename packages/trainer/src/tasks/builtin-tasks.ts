import type { SeededRandom } from '@moerl/core';
import { defineTask, type Task } from './task.js';

const DIGITS = '0123456789';

/** Σ base^length over lengths from..to: the strings a task of variable length can draw. */
const stringsOfLengths = (base: number, from: number, to: number) => {
  let count = 0;
  for (let length = from; length <= to; length++) count += base ** length;
  return count;
};

function digitsOf(random: SeededRandom, length: number): string {
  let text = '';
  for (let index = 0; index < length; index++) text += DIGITS[random.nextInt(10)];
  return text;
}

/** `37+5=` → `42`: addition of two numbers of 1 to `maxDigits` digits. */
export function createAdditionTask(maxDigits = 2): Task {
  return defineTask({
    name: 'addition',
    description: `add two numbers of up to ${maxDigits} digits ("37+5=" → "42")`,
    alphabet: `${DIGITS}+=`,
    answerAlphabet: DIGITS,
    maxPromptLength: 2 * maxDigits + 2,
    maxAnswerLength: maxDigits + 1,
    // Operands of 1..maxDigits random digits read as numbers: every value below 10^maxDigits.
    problemCount: 10 ** maxDigits * 10 ** maxDigits,
    generate(random) {
      const operand = () => Number.parseInt(digitsOf(random, 1 + random.nextInt(maxDigits)), 10);
      const a = operand();
      const b = operand();
      return { prompt: `${a}+${b}=`, answer: String(a + b) };
    },
  });
}

/**
 * `482+917=` → `1399`: addition of two numbers of exactly `digits` digits (no leading zero). With 3 digits
 * the problem space holds 810 000 problems, far more than a short warm start sees, so held-out accuracy
 * measures whether a policy learned to add, not which problems it memorised.
 */
export function createLongAdditionTask(digits = 3, options: { reversed?: boolean } = {}): Task {
  const low = 10 ** (digits - 1);
  const span = 9 * low;
  const reversed = options.reversed === true;
  const write = (value: number) => (reversed ? [...String(value)].reverse().join('') : String(value));
  return defineTask({
    name: reversed ? `addition-${digits}-reversed` : `addition-${digits}`,
    description: reversed
      ? `add two ${digits}-digit numbers written least significant digit first ("284+719=" → "9931" is 482 + 917 = 1399; ${span * span} problems)`
      : `add two ${digits}-digit numbers ("482+917=" → "1399"; ${span * span} problems)`,
    alphabet: `${DIGITS}+=`,
    answerAlphabet: DIGITS,
    maxPromptLength: 2 * digits + 2,
    maxAnswerLength: digits + 1,
    problemCount: span * span,
    generate(random) {
      const a = low + random.nextInt(span);
      const b = low + random.nextInt(span);
      return { prompt: `${write(a)}+${write(b)}=`, answer: write(a + b) };
    },
  });
}

/** `3141:` → `1134`: sort a list of digits ascending. */
export function createSortDigitsTask(maxLength = 4): Task {
  return defineTask({
    name: maxLength === 4 ? 'sort-digits' : `sort-digits-${maxLength}`,
    description: `sort up to ${maxLength} digits ascending ("3141:" → "1134")`,
    alphabet: `${DIGITS}:`,
    answerAlphabet: DIGITS,
    maxPromptLength: maxLength + 1,
    maxAnswerLength: maxLength,
    problemCount: stringsOfLengths(10, 2, maxLength),
    generate(random) {
      const digits = digitsOf(random, 2 + random.nextInt(maxLength - 1));
      return { prompt: `${digits}:`, answer: [...digits].sort().join('') };
    },
  });
}

const LETTERS = 'abcdefgh';

/** `abcd<` → `dcba`: reverse a string of letters. */
export function createReverseTask(maxLength = 5): Task {
  return defineTask({
    name: maxLength === 5 ? 'reverse' : `reverse-${maxLength}`,
    description: `reverse up to ${maxLength} letters a–h ("abcd<" → "dcba")`,
    alphabet: `${LETTERS}<`,
    answerAlphabet: LETTERS,
    maxPromptLength: maxLength + 1,
    maxAnswerLength: maxLength,
    problemCount: stringsOfLengths(LETTERS.length, 2, maxLength),
    generate(random) {
      const length = 2 + random.nextInt(maxLength - 1);
      let text = '';
      for (let index = 0; index < length; index++) text += LETTERS[random.nextInt(LETTERS.length)];
      return { prompt: `${text}<`, answer: [...text].reverse().join('') };
    },
  });
}
