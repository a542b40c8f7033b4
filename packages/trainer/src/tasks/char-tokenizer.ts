import { MoerlError } from '@moerl/core';

/** Special tokens every task tokenizer starts with, in this order. */
export const SPECIAL_TOKENS = ['<pad>', '<bos>', '<eos>'] as const;

export interface Tokenizer {
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** The characters after the special tokens, one token each. */
  readonly alphabet: string;
  encode(text: string): number[];
  /** Decodes ids back to text; special tokens are dropped. */
  decode(ids: ArrayLike<number>): string;
}

/**
 * A character-level tokenizer: ids 0–2 are `<pad>`, `<bos>`, `<eos>`, then one id per character of the
 * alphabet. Small vocabularies keep the demo model tiny.
 */
export function createCharTokenizer(alphabet: string): Tokenizer {
  const characters = [...alphabet];
  if (characters.length === 0 || new Set(characters).size !== characters.length) {
    throw new MoerlError(
      'CONFIG_INVALID',
      `A tokenizer alphabet needs distinct characters, found "${alphabet}"`,
      {
        details: { field: 'alphabet', found: alphabet },
      },
    );
  }
  const offset = SPECIAL_TOKENS.length;
  const ids = new Map(characters.map((character, index) => [character, index + offset]));
  return {
    vocabSize: offset + characters.length,
    padId: 0,
    bosId: 1,
    eosId: 2,
    alphabet,
    encode(text) {
      return [...text].map((character, index) => {
        const id = ids.get(character);
        if (id === undefined) {
          throw new MoerlError(
            'INVALID_ARGUMENT',
            `Character ${JSON.stringify(character)} at index ${index} is not in the alphabet "${alphabet}"`,
            { details: { field: 'text', index, found: character } },
          );
        }
        return id;
      });
    },
    decode(tokenIds) {
      let text = '';
      for (let index = 0; index < tokenIds.length; index++) {
        const id = tokenIds[index]!;
        if (id >= offset && id < offset + characters.length) text += characters[id - offset];
      }
      return text;
    },
  };
}
