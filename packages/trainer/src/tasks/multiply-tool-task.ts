import type { Environment } from './environment.js';
import { defineTask, type Task, type TaskExample } from './task.js';

const TOOL_CALL = /^c(\d+)\*(\d+)$/;

/**
 * The calculator of `multiply-tool`: a first turn `c<a>*<b>` is a tool call answered with `=<a·b>`; any other
 * turn is the final answer, rewarded 1 when it is the product. One tool call at most, then an answer.
 */
export const calculatorEnvironment: Environment<TaskExample> = {
  name: 'calculator',
  maxTurns: 2,
  maxObservationTokens: 6,
  reset: (example) => example,
  step(example, turn, { turn: index }) {
    const call = TOOL_CALL.exec(turn);
    if (call !== null && index === 1)
      return { observation: `=${Number(call[1]) * Number(call[2])}`, done: false, toolCall: true };
    const correct = turn === example.answer;
    return { done: true, reward: correct ? 1 : 0, correct };
  },
  // Every third problem or so is demonstrated with the tool, the others answered directly: the warm start
  // leaves RL room to find out that the calculator pays.
  demonstrate(example) {
    const [a, b] = example.prompt.slice(0, -1).split('*');
    return (Number(a) + Number(b)) % 10 < 3
      ? { turns: [`c${a}*${b}`, example.answer], observations: [`=${example.answer}`] }
      : { turns: [example.answer], observations: [] };
  },
};

/**
 * `37*46=` → `1702`, two-digit multiplication that a small model does badly in its head and exactly with the
 * calculator it may call (`c37*46` → `=1702`, then the answer): an agent task where using the tool pays.
 */
export function createMultiplyToolTask(): Task {
  return defineTask({
    name: 'multiply-tool',
    description:
      'multiply two 2-digit numbers ("37*46=" → "1702"), with a calculator the model may call as c37*46',
    alphabet: '0123456789*=c',
    answerAlphabet: '0123456789',
    maxPromptLength: 6,
    maxAnswerLength: 6,
    problemCount: 90 * 90,
    generate(random) {
      const a = 10 + random.nextInt(90);
      const b = 10 + random.nextInt(90);
      return { prompt: `${a}*${b}=`, answer: String(a * b) };
    },
    environment: calculatorEnvironment as Environment,
  });
}
