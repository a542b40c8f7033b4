import { createRandom } from '@moerl/core';
import { defineTask } from '@moerl/trainer';

// Two hooks decide how a response (decoded text, without <eos>) is judged:
// - isCorrect: right or wrong; what accuracy and evaluations count (default: exact match);
// - reward: a graded reward in [0, 1] that replaces the exact-match 1 and the format reward.
const copy = defineTask({
  name: 'copy-word',
  description: 'repeat the word ("abc=" → "abc"), partial credit per matching letter',
  alphabet: 'abc=',
  answerAlphabet: 'abc',
  maxPromptLength: 5,
  maxAnswerLength: 4,
  generate(random) {
    const word = Array.from({ length: 2 + random.nextInt(3) }, () => 'abc'[random.nextInt(3)]).join('');
    return { prompt: `${word}=`, answer: word };
  },
  isCorrect: (example, response) => response === example.answer,
  reward: (example, response) =>
    [...example.answer].filter((letter, index) => response[index] === letter).length / example.answer.length,
});

const example = copy.generate(createRandom(7));
const respond = (text: string) => [...copy.tokenizer.encode(text), copy.tokenizer.eosId];
const wrongFirst = `${example.answer[0] === 'a' ? 'b' : 'a'}${example.answer.slice(1)}`;
for (const response of [example.answer, wrongFirst]) {
  const { reward, correct } = copy.score(example, respond(response));
  console.log(`${example.prompt} ${response}: reward ${reward.toFixed(2)}, correct ${correct}`);
}
