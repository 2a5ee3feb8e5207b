// Training a CLIP-style byte-level BPE vocabulary (Sennrich et al. 2016, "Neural Machine Translation of Rare
// Words with Subword Units", Algorithm 1, on UTF-8 bytes as in GPT-2/CLIP) and saving it as a Hugging Face
// tokenizer folder that `CLIPTokenizer.fromPretrained` loads.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/safetensors.js';
import {
  CLIP_BOS,
  CLIP_EOS,
  CLIP_MODEL_MAX_LENGTH,
  END_OF_WORD_SUFFIX,
  buildClipTokenizerJson,
  specialAddedToken,
  type AddedTokenJson,
  type ClipTokenizerJson,
} from './tokenizer.js';
import { KinemaError } from '../../errors.js';

export interface TrainClipBpeOptions {
  /** Total vocabulary size: 512 byte symbols + merges + 2 special tokens (so at least 514). */
  vocabSize: number;
  /** A pair is merged only if it occurs at least this often (default 2). */
  minFrequency?: number;
}

export interface SaveClipTokenizerOptions {
  /** Context length written to tokenizer_config.json (default 77). */
  modelMaxLength?: number;
  /** Pad token (default `<|endoftext|>`, the SD1 / OpenAI CLIP convention); must be in the vocabulary. */
  padToken?: string;
}

/**
 * GPT-2/CLIP's reversible byte → printable-character map: printable Latin-1 bytes map to themselves, the other
 * bytes to U+0100 + n, so every byte sequence becomes a string without whitespace or control characters.
 * Returned in CLIP's vocabulary order (the printable bytes first).
 */
export function bytesToUnicode(): Array<[number, string]> {
  const bytes: number[] = [];
  for (const [lo, hi] of [
    [0x21, 0x7e],
    [0xa1, 0xac],
    [0xae, 0xff],
  ] as const) {
    for (let b = lo; b <= hi; b++) bytes.push(b);
  }
  const chars = bytes.map((b) => String.fromCodePoint(b));
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (bytes.includes(b)) continue;
    bytes.push(b);
    chars.push(String.fromCodePoint(256 + n++));
  }
  return bytes.map((b, i) => [b, chars[i] as string]);
}

const CLIP_SPLIT_RE = /'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/gu;

/**
 * CLIP pre-tokenization as in the tokenizer.json pipeline: NFC, whitespace runs → one space, lowercase, the
 * CLIP split pattern, then each word's UTF-8 bytes as byte-unicode characters.
 */
export function clipPreTokenize(text: string, byteChars: readonly string[]): string[] {
  const normalized = text.normalize('NFC').replace(/\s+/gu, ' ').toLowerCase();
  const encoder = new TextEncoder();
  return Array.from(normalized.matchAll(CLIP_SPLIT_RE), (m) =>
    Array.from(encoder.encode(m[0]), (b) => byteChars[b] as string).join(''),
  );
}

interface Word {
  symbols: string[];
  count: number;
}

/** Max-heap of (count, pair) with lazy deletion: stale entries are skipped when popped. */
class PairHeap {
  private items: Array<[number, string]> = [];

  private before(a: [number, string], b: [number, string]): boolean {
    return a[0] !== b[0] ? a[0] > b[0] : a[1] < b[1]; // higher count first, then lexicographic pair
  }

  push(item: [number, string]): void {
    const h = this.items;
    h.push(item);
    for (let i = h.length - 1; i > 0;) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i] as [number, string], h[p] as [number, string])) break;
      [h[i], h[p]] = [h[p] as [number, string], h[i] as [number, string]];
      i = p;
    }
  }

  pop(): [number, string] | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      for (let i = 0; ;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l] as [number, string], h[m] as [number, string])) m = l;
        if (r < h.length && this.before(h[r] as [number, string], h[m] as [number, string])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as [number, string], h[i] as [number, string]];
        i = m;
      }
    }
    return top;
  }
}

/** Pair-frequency bookkeeping over the word list (pair key = "left right"; symbols never contain spaces). */
class PairStats {
  readonly counts = new Map<string, number>();
  readonly where = new Map<string, Set<number>>();
  readonly heap = new PairHeap();

  addWord(word: Word, index: number, sign: 1 | -1): void {
    for (let i = 0; i + 1 < word.symbols.length; i++) {
      const key = `${word.symbols[i]} ${word.symbols[i + 1]}`;
      this.counts.set(key, (this.counts.get(key) ?? 0) + sign * word.count);
      if (sign === 1) {
        let set = this.where.get(key);
        if (set === undefined) this.where.set(key, (set = new Set()));
        set.add(index);
      }
    }
  }

  /** Pushes the current counts of the given pairs (after they changed). */
  refresh(keys: Iterable<string>): void {
    for (const key of keys) {
      const c = this.counts.get(key) ?? 0;
      if (c > 0) this.heap.push([c, key]);
    }
  }

  /** The most frequent pair (ties → lexicographically smallest), or undefined when none is left. */
  best(): [number, string] | undefined {
    for (;;) {
      const top = this.heap.pop();
      if (top === undefined) return undefined;
      if (this.counts.get(top[1]) === top[0]) return top;
    }
  }
}

/** Replaces every non-overlapping (left, right) occurrence, scanning left to right. */
function mergeSymbols(symbols: string[], left: string, right: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < symbols.length; i++) {
    if (symbols[i] === left && symbols[i + 1] === right) {
      out.push(left + right);
      i++;
    } else {
      out.push(symbols[i] as string);
    }
  }
  return out;
}

/** Word frequencies of a corpus, each word split into byte symbols with `</w>` on the last one. */
function countWords(texts: Iterable<string>, byteChars: readonly string[]): Word[] {
  const freq = new Map<string, number>();
  for (const text of texts) {
    if (typeof text !== 'string')
      throw new KinemaError('TOKENIZER_INVALID', 'trainClipBpe: every training text must be a string');
    for (const w of clipPreTokenize(text, byteChars)) freq.set(w, (freq.get(w) ?? 0) + 1);
  }
  return [...freq.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)) // deterministic word order
    .map(([w, count]) => {
      const chars = Array.from(w);
      chars[chars.length - 1] += END_OF_WORD_SUFFIX;
      return { symbols: chars, count };
    });
}

/**
 * Learns byte-level BPE merges on `texts` with CLIP's pre-tokenization and returns a tokenizer.json in CLIP's
 * format: the 256 byte symbols, the same with `</w>`, one token per merge, then `<|startoftext|>`,
 * `<|endoftext|>`. Because every byte has a token, any text (emoji, unseen scripts) still encodes.
 */
export function trainClipBpe(texts: Iterable<string>, opts: TrainClipBpeOptions): ClipTokenizerJson {
  const minFrequency = opts.minFrequency ?? 2;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 514) {
    throw new KinemaError(
      'TOKENIZER_INVALID',
      `trainClipBpe: vocabSize must be an integer ≥ 514 (512 byte symbols + 2 special), got ${opts.vocabSize}`,
    );
  }
  if (!Number.isFinite(minFrequency) || minFrequency < 1)
    throw new KinemaError('TOKENIZER_INVALID', `trainClipBpe: minFrequency must be ≥ 1, got ${minFrequency}`);
  const byteOrder = bytesToUnicode();
  const byteChars: string[] = [];
  for (const [b, c] of byteOrder) byteChars[b] = c;
  const base = byteOrder.map(([, c]) => c);
  const tokens = [...base, ...base.map((c) => c + END_OF_WORD_SUFFIX)];
  const known = new Set(tokens);
  const merges: string[] = [];
  const words = countWords(texts, byteChars);
  const stats = new PairStats();
  words.forEach((w, i) => stats.addWord(w, i, 1));
  stats.refresh(stats.counts.keys());
  // 1. repeatedly merge the most frequent adjacent pair (Sennrich et al., Algorithm 1)
  while (tokens.length < opts.vocabSize - 2) {
    const best = stats.best();
    if (best === undefined || best[0] < minFrequency) break;
    const key = best[1];
    const [left, right] = key.split(' ') as [string, string];
    merges.push(key);
    if (!known.has(left + right)) {
      known.add(left + right);
      tokens.push(left + right);
    }
    // 2. re-count the pairs of the words that contain it
    const changed = new Set<string>();
    for (const index of stats.where.get(key) ?? []) {
      const word = words[index] as Word;
      stats.addWord(word, index, -1);
      word.symbols = mergeSymbols(word.symbols, left, right);
      stats.addWord(word, index, 1);
      for (let i = 0; i + 1 < word.symbols.length; i++)
        changed.add(`${word.symbols[i]} ${word.symbols[i + 1]}`);
    }
    stats.counts.delete(key);
    stats.where.delete(key);
    stats.refresh(changed);
  }
  // 3. vocabulary: bytes, bytes + </w>, merged tokens, then the special tokens
  tokens.push(CLIP_BOS, CLIP_EOS);
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const added = [
    specialAddedToken(CLIP_BOS, tokens.length - 2, true),
    specialAddedToken(CLIP_EOS, tokens.length - 1, true),
  ];
  return buildClipTokenizerJson(
    vocab,
    merges,
    { bosToken: CLIP_BOS, eosToken: CLIP_EOS, unkToken: CLIP_EOS },
    added,
  );
}

/** AddedToken as written in tokenizer_config.json's added_tokens_decoder / special_tokens_map.json. */
function addedTokenConfig(t: AddedTokenJson): Record<string, unknown> {
  return {
    content: t.content,
    lstrip: t.lstrip,
    normalized: t.normalized,
    rstrip: t.rstrip,
    single_word: t.single_word,
    special: t.special,
  };
}

/**
 * Writes a Hugging Face CLIP tokenizer folder: tokenizer.json, vocab.json, merges.txt, tokenizer_config.json
 * and special_tokens_map.json (each file written atomically).
 */
export function saveClipTokenizer(
  dir: string,
  json: ClipTokenizerJson,
  opts: SaveClipTokenizerOptions = {},
): void {
  const padToken = opts.padToken ?? CLIP_EOS;
  const modelMaxLength = opts.modelMaxLength ?? CLIP_MODEL_MAX_LENGTH;
  const vocab = json.model.vocab;
  const padId = Object.prototype.hasOwnProperty.call(vocab, padToken) ? vocab[padToken] : undefined;
  if (padId === undefined)
    throw new KinemaError(
      'TOKENIZER_INVALID',
      `saveClipTokenizer: pad token ${JSON.stringify(padToken)} is not in the vocabulary`,
    );
  if (!Number.isInteger(modelMaxLength) || modelMaxLength < 2)
    throw new KinemaError('TOKENIZER_INVALID', `saveClipTokenizer: bad modelMaxLength ${modelMaxLength}`);
  const added = json.added_tokens.some((t) => t.content === padToken)
    ? json.added_tokens
    : [...json.added_tokens, specialAddedToken(padToken, padId, false)].sort((a, b) => a.id - b.id);
  const full: ClipTokenizerJson = { ...json, added_tokens: added };
  const bos = full.post_processor['cls'] as [string, number];
  const eos = full.post_processor['sep'] as [string, number];
  const byContent = (content: string): Record<string, unknown> => {
    const t = added.find((a) => a.content === content);
    if (t === undefined) return { content };
    const { special: _special, ...rest } = addedTokenConfig(t);
    return rest;
  };
  const tokenizerConfig = {
    added_tokens_decoder: Object.fromEntries(added.map((t) => [String(t.id), addedTokenConfig(t)])),
    bos_token: bos[0],
    clean_up_tokenization_spaces: true,
    eos_token: eos[0],
    errors: 'replace',
    model_max_length: modelMaxLength,
    pad_token: padToken,
    tokenizer_class: 'CLIPTokenizer',
    unk_token: full.model.unk_token,
  };
  const specialMap = {
    bos_token: byContent(bos[0]),
    eos_token: byContent(eos[0]),
    pad_token: byContent(padToken),
    unk_token: byContent(full.model.unk_token),
  };
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(full, null, 2) + '\n');
  writeFileAtomic(join(dir, 'vocab.json'), JSON.stringify(vocab, null, 2) + '\n');
  writeFileAtomic(join(dir, 'merges.txt'), ['#version: 0.2', ...full.model.merges].join('\n') + '\n');
  writeFileAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
  writeFileAtomic(join(dir, 'special_tokens_map.json'), JSON.stringify(specialMap, null, 2) + '\n');
}
