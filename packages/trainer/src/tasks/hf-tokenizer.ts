import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HfTokenizerCore } from '@huggingface/tokenizers';
import { MoerlError } from '@moerl/core';
import type { Tokenizer } from './char-tokenizer.js';

/** One message of a chat, as Hugging Face chat templates take it. */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/** A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) behind the trainer's `Tokenizer`. */
export interface HfTokenizer extends Tokenizer {
  /** `'hf'`: ids come from the model's own vocabulary, not one per character. */
  readonly kind: 'hf';
  /** Every added special token (`<|im_end|>`, …) by its text. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /** Whether tokenizer_config.json carries a chat template. */
  readonly hasChatTemplate: boolean;
  /** The id of `token` (a vocabulary entry or an added token), if it has one. */
  tokenToId(token: string): number | undefined;
  /**
   * The chat template of tokenizer_config.json rendered over `messages`; with `addGenerationPrompt` it ends
   * where the assistant's reply starts. UNSUPPORTED when the tokenizer has no chat template.
   */
  applyChatTemplate(
    messages: readonly ChatMessage[],
    options?: { readonly addGenerationPrompt?: boolean },
  ): string;
}

type JsonObject = Record<string, unknown>;

/** A special token as tokenizer_config.json writes it: a string, an `{ content }` object or null. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as JsonObject).content === 'string')
    return (value as JsonObject).content as string;
  return undefined;
}

/**
 * Builds the tokenizer from the parsed files. Encoding adds no special tokens (prompts get them from the chat
 * template); decoding drops them, as the character tokenizer does. A tokenizer without a BOS token (Qwen3)
 * reports the pad token's id as `bosId`, as Qwen3's config.json does, and nothing is prepended to prompts.
 */
export function createHfTokenizer(tokenizerJson: JsonObject, tokenizerConfig: JsonObject): HfTokenizer {
  const core = new HfTokenizerCore(tokenizerJson, tokenizerConfig);
  const model = (tokenizerJson.model ?? {}) as { vocab?: Record<string, number> | [string, number][] };
  const vocab = new Map<string, number>(
    Array.isArray(model.vocab)
      ? model.vocab.map(([token], index) => [token, index] as [string, number])
      : Object.entries(model.vocab ?? {}),
  );
  const specialTokens = new Map<string, number>();
  for (const added of (tokenizerJson.added_tokens ?? []) as {
    id: number;
    content: string;
    special?: boolean;
  }[]) {
    vocab.set(added.content, added.id);
    if (added.special === true) specialTokens.set(added.content, added.id);
  }
  const tokenToId = (token: string) => vocab.get(token);
  const idOf = (field: string): number | undefined => {
    const text = tokenText(tokenizerConfig[field]);
    return text === undefined ? undefined : tokenToId(text);
  };
  const eosId = idOf('eos_token');
  if (eosId === undefined) {
    throw new MoerlError(
      'CONFIG_INVALID',
      'tokenizer_config.json names no eos_token that the vocabulary holds',
      {
        details: { field: 'eos_token', found: String(tokenizerConfig.eos_token) },
      },
    );
  }
  const padId = idOf('pad_token') ?? eosId;
  let vocabSize = 0;
  for (const id of vocab.values()) vocabSize = Math.max(vocabSize, id + 1);
  const template =
    typeof tokenizerConfig.chat_template === 'string'
      ? new Template(tokenizerConfig.chat_template)
      : undefined;
  return {
    kind: 'hf',
    vocabSize,
    padId,
    bosId: idOf('bos_token') ?? padId,
    eosId,
    alphabet: '',
    specialTokens,
    hasChatTemplate: template !== undefined,
    tokenToId,
    encode: (text) => core.encode(text, { add_special_tokens: false }).ids,
    // The library refuses an empty list; an empty response (the model ended at once) is empty text.
    decode: (ids) => (ids.length === 0 ? '' : core.decode(Array.from(ids), { skip_special_tokens: true })),
    applyChatTemplate(messages, options = {}) {
      if (template === undefined) {
        throw new MoerlError('UNSUPPORTED', 'This tokenizer has no chat_template in tokenizer_config.json', {
          details: { field: 'chat_template' },
        });
      }
      return template.render({
        messages: messages.map((message) => ({ ...message })),
        add_generation_prompt: options.addGenerationPrompt === true,
        bos_token: tokenText(tokenizerConfig.bos_token) ?? '',
        eos_token: tokenText(tokenizerConfig.eos_token) ?? '',
        pad_token: tokenText(tokenizerConfig.pad_token) ?? '',
      });
    },
  };
}

/** Reads `directory`/tokenizer.json and tokenizer_config.json (a Hugging Face model directory). */
export async function loadHfTokenizer(directory: string): Promise<HfTokenizer> {
  const read = async (name: string): Promise<JsonObject> => {
    const path = join(directory, name);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new MoerlError('IO_ERROR', `Cannot read ${path}: ${(error as Error).message}`, {
        cause: error,
        details: { path },
      });
    }
    try {
      return JSON.parse(text) as JsonObject;
    } catch (error) {
      throw new MoerlError('CONFIG_INVALID', `${path} is not valid JSON: ${(error as Error).message}`, {
        cause: error,
        details: { path },
      });
    }
  };
  return createHfTokenizer(await read('tokenizer.json'), await read('tokenizer_config.json'));
}
