import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { bytesToUnicode, saveClipTokenizer, trainClipBpe } from '../../../src/models/clip/bpe_trainer.js';
import { CLIPTokenizer } from '../../../src/models/clip/tokenizer.js';

const PARITY_DIR =
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity');
const FIXTURE_TOKENIZER = join(PARITY_DIR, 'tokenizer', 'tokenizer.json');

/** Captions of a small procedural world: shapes with colours, sizes and motions. */
function captions(): string[] {
  const colours = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
  const shapes = ['circle', 'square', 'triangle', 'star'];
  const motions = ['moving left', 'moving right', 'bouncing up and down', 'spinning slowly', 'growing'];
  const sizes = ['small', 'large'];
  const out: string[] = [];
  for (const c of colours) {
    for (const s of shapes) {
      for (const m of motions) {
        for (const z of sizes) out.push(`A ${z} ${c} ${s} ${m} on a black background.`);
      }
    }
  }
  return out;
}

test('merges follow Sennrich et al.: most frequent pair first, ties broken lexicographically', () => {
  const text = `${'low '.repeat(5)}${'lower '.repeat(2)}${'newest '.repeat(6)}${'widest '.repeat(3)}`;
  const json = trainClipBpe([text], { vocabSize: 518 });
  // Pair counts (with </w> on the last symbol): e s 9, s t</w> 9, w e 8, l o 7, e w 6, n e 6, w est</w> 6 ...
  assert.deepEqual(json.model.merges, ['e s', 'es t</w>', 'l o', 'e w']);
  assert.equal(Object.keys(json.model.vocab).length, 518);
  assert.equal(json.model.vocab['es'], 512);
  assert.equal(json.model.vocab['est</w>'], 513);
  assert.equal(json.model.vocab['<|startoftext|>'], 516);
  assert.equal(json.model.vocab['<|endoftext|>'], 517);
});

test('minFrequency stops merging rare pairs; bad options are rejected', () => {
  const json = trainClipBpe(['abc abc xyz'], { vocabSize: 600, minFrequency: 2 });
  assert.deepEqual(json.model.merges, ['a b', 'ab c</w>']);
  assert.throws(() => trainClipBpe(['x'], { vocabSize: 513 }), /vocabSize/);
  assert.throws(() => trainClipBpe(['x'], { vocabSize: 600, minFrequency: 0 }), /minFrequency/);
});

test(
  'the trained tokenizer.json has the fixture CLIP format and the same 512 byte symbols first',
  { skip: !existsSync(FIXTURE_TOKENIZER) },
  () => {
    const json = trainClipBpe(captions(), { vocabSize: 700 });
    const reference = JSON.parse(readFileSync(FIXTURE_TOKENIZER, 'utf8')) as Record<string, unknown>;
    const trained = json as unknown as Record<string, unknown>;
    for (const key of ['version', 'normalizer', 'pre_tokenizer', 'decoder'])
      assert.deepEqual(trained[key], reference[key], key);
    const refModel = reference['model'] as typeof json.model;
    const { vocab: _v, merges: _m, ...flags } = json.model;
    const { vocab: refVocab, merges: _rm, ...refFlags } = refModel;
    assert.deepEqual(flags, refFlags);
    const byId = (v: Record<string, number>): string[] =>
      Object.entries(v)
        .sort((a, b) => a[1] - b[1])
        .map(([t]) => t);
    assert.deepEqual(byId(json.model.vocab).slice(0, 512), byId(refVocab).slice(0, 512));
    const n = Object.keys(json.model.vocab).length;
    assert.deepEqual(json.post_processor, {
      ...(reference['post_processor'] as object),
      sep: ['<|endoftext|>', n - 1],
      cls: ['<|startoftext|>', n - 2],
    });
    assert.equal(bytesToUnicode().length, 256);
  },
);

test('train → save → fromPretrained: captions use merged tokens, unseen text and emoji still round-trip', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-bpe-'));
  try {
    const texts = captions();
    const json = trainClipBpe(texts, { vocabSize: 700 });
    assert.ok(Object.keys(json.model.vocab).length <= 700);
    saveClipTokenizer(dir, json);
    assert.deepEqual(readdirSync(dir).sort(), [
      'merges.txt',
      'special_tokens_map.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'vocab.json',
    ]);
    const tok = await CLIPTokenizer.fromPretrained(dir);
    assert.equal(tok.modelMaxLength, 77);
    assert.equal(tok.padTokenId, tok.eosTokenId);
    assert.deepEqual(tok.tokens('A small red circle moving left'), [
      'a</w>',
      'small</w>',
      'red</w>',
      'circle</w>',
      'moving</w>',
      'left</w>',
    ]);
    let words = 0;
    let tokens = 0;
    for (const t of texts) {
      words += t.split(/\s+/).length;
      tokens += tok.encode(t, { padding: false }).inputIds.length - 2;
    }
    assert.ok(tokens / words <= 1.2, `${(tokens / words).toFixed(2)} tokens per word on training captions`);
    // Slow-format files give the same tokenizer.
    const slowDir = join(dir, 'slow');
    saveClipTokenizer(slowDir, json);
    rmSync(join(slowDir, 'tokenizer.json'));
    const slow = await CLIPTokenizer.fromPretrained(slowDir);
    const unseen = ['Zebra 🦓 galloping — über schnell! 日本語 42', '🚀🔥', 'naïve café'];
    for (const text of unseen) {
      const ids = tok.encode(text, { padding: false }).inputIds;
      assert.deepEqual(slow.encode(text, { padding: false }).inputIds, ids);
      assert.ok(ids.every((id) => id >= 0 && id < 700));
      assert.ok(!ids.slice(1, -1).includes(tok.eosTokenId), `no unknown tokens for ${text}`);
      const squash = (s: string): string => s.normalize('NFC').toLowerCase().replace(/\s+/g, '');
      assert.equal(squash(tok.decode(ids)), squash(text));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('saveClipTokenizer validates the pad token', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-bpe-bad-'));
  try {
    const json = trainClipBpe(['a b c'], { vocabSize: 514 });
    assert.throws(() => saveClipTokenizer(dir, json, { padToken: '<pad>' }), /pad token "<pad>"/);
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
