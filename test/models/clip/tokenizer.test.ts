import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';

const PARITY_DIR =
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity');
const DIR = join(PARITY_DIR, 'tokenizer');
const skip = existsSync(join(DIR, 'prompts.json')) ? false : `tokenizer fixture not found in ${DIR}`;

interface PromptRecord {
  prompt: string;
  tokens: string[];
  input_ids_untruncated: number[];
  input_ids: number[];
  attention_mask: number[];
  input_ids_pad_eos: number[];
  /** Only where the fast (tokenizer.json) pipeline differs from the slow reference: the CJK prompt. */
  input_ids_untruncated_tokenizer_json?: number[];
}

const readJson = (name: string): unknown => JSON.parse(readFileSync(join(DIR, name), 'utf8'));
const prompts = (): PromptRecord[] => readJson('prompts.json') as PromptRecord[];

let cached: Promise<CLIPTokenizer> | undefined;
const tokenizer = (): Promise<CLIPTokenizer> => (cached ??= CLIPTokenizer.fromPretrained(DIR));

/** bos…eos ids padded to `length` with `pad`, mask 1 for the real ids (what padding="max_length" gives). */
function padded(ids: number[], length: number, pad: number): { inputIds: number[]; attentionMask: number[] } {
  const body = ids.length > length ? [...ids.slice(0, length - 1), ids[ids.length - 1] as number] : ids;
  const fill = Math.max(0, length - body.length);
  return {
    inputIds: [...body, ...Array<number>(fill).fill(pad)],
    attentionMask: [...body.map(() => 1), ...Array<number>(fill).fill(0)],
  };
}

test('special token ids and model_max_length come from the folder config', { skip }, async () => {
  const tok = await tokenizer();
  const config = readJson('tokenizer_config.json') as Record<string, unknown>;
  const vocab = readJson('vocab.json') as Record<string, number>;
  assert.equal(tok.modelMaxLength, config['model_max_length']);
  assert.equal(tok.padTokenId, vocab[config['pad_token'] as string]);
  assert.equal(tok.bosTokenId, vocab['<|startoftext|>']);
  assert.equal(tok.eosTokenId, vocab['<|endoftext|>']);
  assert.equal(tok.vocabulary().get('<|endoftext|>'), tok.eosTokenId);
  assert.equal(tok.vocabulary().size, Object.keys(vocab).length);
});

test(
  'every prompt: tokens, input_ids (padded/truncated to 77), untruncated ids and attention_mask',
  { skip },
  async () => {
    const tok = await tokenizer();
    for (const p of prompts()) {
      const what = JSON.stringify(p.prompt);
      // The slow reference splits CJK ideographs into separate words, the fast pipeline does not (see README);
      // the fixture stores the tokenizer.json result for that prompt separately.
      const untruncated = p.input_ids_untruncated_tokenizer_json ?? p.input_ids_untruncated;
      assert.deepEqual(
        tok.encode(p.prompt, { padding: false, truncation: false }).inputIds,
        untruncated,
        what,
      );
      const expected =
        p.input_ids_untruncated_tokenizer_json === undefined
          ? { inputIds: p.input_ids, attentionMask: p.attention_mask }
          : padded(untruncated, tok.modelMaxLength, tok.padTokenId);
      assert.deepEqual(tok.encode(p.prompt), expected, what);
      if (p.input_ids_untruncated_tokenizer_json === undefined)
        assert.deepEqual(tok.tokens(p.prompt), p.tokens, what);
    }
  },
);

test('the long prompt is truncated to bos + 75 tokens + eos', { skip }, async () => {
  const tok = await tokenizer();
  const long = prompts().find((p) => p.input_ids_untruncated.length > tok.modelMaxLength);
  assert.ok(long !== undefined, 'fixture has a prompt longer than 77 tokens');
  const { inputIds, attentionMask } = tok.encode(long.prompt);
  assert.equal(inputIds.length, 77);
  assert.deepEqual(inputIds.slice(0, 76), long.input_ids_untruncated.slice(0, 76));
  assert.equal(inputIds[76], tok.eosTokenId);
  assert.ok(attentionMask.every((m) => m === 1));
});

test(
  'slowTokenizerCompat reproduces the slow tokenizer for every prompt, CJK included',
  { skip },
  async () => {
    const tok = await CLIPTokenizer.fromPretrained(DIR, { slowTokenizerCompat: true });
    const cjk = prompts().filter((p) => p.input_ids_untruncated_tokenizer_json !== undefined);
    assert.equal(cjk.length, 1);
    for (const p of prompts()) {
      assert.deepEqual(tok.tokens(p.prompt), p.tokens, p.prompt);
      assert.deepEqual(tok.encode(p.prompt).inputIds, p.input_ids, p.prompt);
    }
  },
);

test(
  'pad token overridden to <|endoftext|> gives input_ids_pad_eos ("!" becomes an ordinary token)',
  { skip },
  async () => {
    const tok = await CLIPTokenizer.fromPretrained(DIR, { padToken: '<|endoftext|>' });
    assert.equal(tok.padTokenId, tok.eosTokenId);
    for (const p of prompts()) {
      const expected =
        p.input_ids_untruncated_tokenizer_json === undefined
          ? p.input_ids_pad_eos
          : padded(p.input_ids_untruncated_tokenizer_json, tok.modelMaxLength, tok.padTokenId).inputIds;
      assert.deepEqual(tok.encode(p.prompt).inputIds, expected, p.prompt);
    }
    // README gotchas: "!" is the special pad token (id 0) only while it is the pad token.
    const base = await tokenizer();
    assert.deepEqual(base.encode('wow!!', { padding: false }).inputIds.slice(1, -1), [2781, 0, 0]);
    assert.deepEqual(tok.encode('wow!!', { padding: false }).inputIds.slice(1, -1), [2781, 748]);
    assert.equal(tok.encode('Hello, World!', { padding: false }).inputIds.at(-2), 256);
  },
);

test(
  'a folder with only vocab.json + merges.txt builds the same tokenizer as tokenizer.json',
  { skip },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kinema-clip-slow-'));
    try {
      for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
        symlinkSync(join(DIR, f), join(dir, f));
      }
      const slowFiles = await CLIPTokenizer.fromPretrained(dir);
      const fast = await tokenizer();
      const reference = readJson('tokenizer.json') as Record<string, unknown>;
      const built = slowFiles.tokenizerJson as unknown as Record<string, unknown>;
      for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'added_tokens']) {
        assert.deepEqual(built[key], reference[key], key);
      }
      const { vocab: v1, merges: m1, ...model1 } = slowFiles.tokenizerJson.model;
      const { vocab: v2, merges: m2, ...model2 } = reference['model'] as typeof slowFiles.tokenizerJson.model;
      assert.deepEqual(model1, model2);
      assert.equal(Object.keys(v1).length, Object.keys(v2).length);
      assert.deepEqual(m1, m2);
      for (const p of prompts())
        assert.deepEqual(slowFiles.encode(p.prompt), fast.encode(p.prompt), p.prompt);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('encodeBatch, decode and option handling', { skip }, async () => {
  const tok = await tokenizer();
  const batch = tok.encodeBatch(['a red circle moving left', '']);
  assert.equal(batch.inputIds.length, 2);
  assert.ok(batch.inputIds.every((ids) => ids.length === 77));
  assert.deepEqual(batch.inputIds[1]?.slice(0, 3), [tok.bosTokenId, tok.eosTokenId, tok.padTokenId]);
  assert.equal(tok.decode(tok.encode('A red circle, moving LEFT').inputIds), 'a red circle, moving left');
  assert.equal(tok.encode('one two three four', { maxLength: 4 }).inputIds.length, 4);
  assert.deepEqual(
    tok.encode('one two three four', { maxLength: 4, truncation: false, padding: false }).inputIds.length,
    6,
  );
  assert.throws(() => tok.encode('x', { maxLength: 1 }), /maxLength/);
});

test('bad folders and tokens give clear errors', { skip }, async () => {
  await assert.rejects(CLIPTokenizer.fromPretrained(join(DIR, 'missing')), /no tokenizer\.json/);
  await assert.rejects(
    CLIPTokenizer.fromPretrained(DIR, { padToken: '<pad>' }),
    /"<pad>" is not in the vocabulary/,
  );
});
