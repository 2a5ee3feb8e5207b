// CLIP's byte-level BPE tokenizer (Radford et al. 2021), loaded from a Hugging Face tokenizer folder.
// Tokenization itself runs in `@huggingface/tokenizers` from a `tokenizer.json`; folders that only have the
// slow-tokenizer files (`vocab.json` + `merges.txt`) get the equivalent tokenizer.json built in memory.

import { Tokenizer } from '@huggingface/tokenizers';
import { parseJsonLenient } from '../../io/json.js';
import { joinPath as join, resolveLoader } from '../../io/loader.js';
import type { FileLoader } from '../../io/loader.js';
import { KinemaError, isKinemaError } from '../../errors.js';

/** CLIP's pre-tokenization pattern (contractions, letter runs, single digits, other non-space runs). */
export const CLIP_SPLIT_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+";
export const END_OF_WORD_SUFFIX = '</w>';
export const CLIP_BOS = '<|startoftext|>';
export const CLIP_EOS = '<|endoftext|>';
/** CLIP's context length: bos + 75 tokens + eos. */
export const CLIP_MODEL_MAX_LENGTH = 77;

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A `tokenizer.json` document (the parts CLIP uses; component objects are passed through as-is). */
export interface ClipTokenizerJson {
  version: string;
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: Record<string, unknown>;
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown>;
  decoder: Record<string, unknown>;
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: string;
    continuing_subword_prefix: string;
    end_of_word_suffix: string;
    fuse_unk: boolean;
    byte_fallback: boolean;
    ignore_merges: boolean;
    vocab: Record<string, number>;
    merges: string[];
  };
}

/** The special tokens and length limit of a CLIP tokenizer (tokenizer_config.json / special_tokens_map.json). */
export interface ClipSpecialTokens {
  bosToken: string;
  eosToken: string;
  unkToken: string;
  padToken: string;
  /** Extra special tokens (`additional_special_tokens`). */
  additional: string[];
  modelMaxLength: number;
}

export interface CLIPTokenizerOptions {
  /** Override the pad token, e.g. `<|endoftext|>` for the SD1 / OpenAI CLIP configuration. */
  padToken?: string;
  modelMaxLength?: number;
  /**
   * Reproduce transformers' slow `CLIPTokenizer` (without ftfy) instead of the fast/tokenizer.json pipeline:
   * its BasicTokenizer drops control characters and puts spaces around CJK ideographs, so e.g. `日本語` is
   * three words there and one word in tokenizer.json. Off by default.
   */
  slowTokenizerCompat?: boolean;
  /** Remove spaces before punctuation when decoding (tokenizer_config.json's value, default true). */
  cleanUpTokenizationSpaces?: boolean;
  /** Where fromPretrained reads the folder (default: the platform's, i.e. the file system in Node). */
  loader?: FileLoader;
}

export interface EncodeOptions {
  /** 'max_length' pads to `maxLength` (default, as SD pipelines call it); false leaves the length as is. */
  padding?: 'max_length' | false;
  /** Keep bos + (maxLength − 2) tokens + eos (default true). */
  truncation?: boolean;
  /** Defaults to modelMaxLength (77). */
  maxLength?: number;
}

export interface Encoded {
  inputIds: number[];
  attentionMask: number[];
}

/** The normalizer / pre-tokenizer / post-processor / decoder of transformers' CLIPConverter. */
export function buildClipTokenizerJson(
  vocab: Record<string, number>,
  merges: string[],
  special: Pick<ClipSpecialTokens, 'bosToken' | 'eosToken' | 'unkToken'>,
  addedTokens: AddedTokenJson[],
): ClipTokenizerJson {
  const id = (token: string): number => vocabId(vocab, token, 'vocab.json');
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'NFC' },
        { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
        { type: 'Lowercase' },
      ],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT_PATTERN }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      ],
    },
    post_processor: {
      type: 'RobertaProcessing',
      sep: [special.eosToken, id(special.eosToken)],
      cls: [special.bosToken, id(special.bosToken)],
      trim_offsets: false,
      add_prefix_space: false,
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: special.unkToken,
      continuing_subword_prefix: '',
      end_of_word_suffix: END_OF_WORD_SUFFIX,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/** An added-token record for a special token, with CLIP's flags (pad tokens are matched unnormalized). */
export function specialAddedToken(content: string, id: number, normalized: boolean): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized, special: true };
}

/** Parses `merges.txt` ("#version" header, then one "left right" pair per line). */
export function parseMergesTxt(text: string, source = 'merges.txt'): string[] {
  const lines = text.split('\n');
  const merges: string[] = [];
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    if (line.split(' ').length !== 2)
      throw new KinemaError(
        'TOKENIZER_INVALID',
        `${source}:${i + 1}: expected "left right", got ${JSON.stringify(line)}`,
      );
    merges.push(line);
  });
  return merges;
}

function vocabId(vocab: Record<string, number>, token: string, source: string): number {
  const id = Object.prototype.hasOwnProperty.call(vocab, token) ? vocab[token] : undefined;
  if (id === undefined)
    throw new KinemaError(
      'TOKENIZER_INVALID',
      `${source}: token ${JSON.stringify(token)} is not in the vocabulary`,
    );
  return id;
}

/** Content of a token entry in tokenizer_config.json / special_tokens_map.json (string or AddedToken object). */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function readJsonObject(path: string, files: FileLoader): Promise<Record<string, unknown> | undefined> {
  if (files.kind(path) === null) return undefined;
  const value = parseJsonLenient(files.readText(path), path);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new KinemaError('TOKENIZER_INVALID', `${path}: expected a JSON object`);
  return value as Record<string, unknown>;
}

/** Special tokens from tokenizer_config.json, then special_tokens_map.json, then the caller's overrides. */
function resolveSpecialTokens(
  config: Record<string, unknown>,
  map: Record<string, unknown>,
  opts: CLIPTokenizerOptions,
): ClipSpecialTokens {
  const pick = (key: string, fallback: string): string =>
    tokenContent(map[key]) ?? tokenContent(config[key]) ?? fallback;
  const additionalRaw = map['additional_special_tokens'] ?? config['additional_special_tokens'] ?? [];
  const additional = Array.isArray(additionalRaw)
    ? additionalRaw.map(tokenContent).filter((t) => t !== undefined)
    : [];
  const maxLength = opts.modelMaxLength ?? config['model_max_length'] ?? CLIP_MODEL_MAX_LENGTH;
  if (typeof maxLength !== 'number' || !Number.isInteger(maxLength) || maxLength < 2 || maxLength > 1e6) {
    throw new KinemaError(
      'TOKENIZER_INVALID',
      `model_max_length must be an integer in [2, 1e6], got ${JSON.stringify(maxLength)}`,
    );
  }
  return {
    bosToken: pick('bos_token', CLIP_BOS),
    eosToken: pick('eos_token', CLIP_EOS),
    unkToken: pick('unk_token', CLIP_EOS),
    padToken: opts.padToken ?? pick('pad_token', CLIP_EOS),
    additional,
    modelMaxLength: maxLength,
  };
}

/**
 * The added tokens for a tokenizer: non-special added tokens are kept; special ones only if they are still
 * configured special tokens (so overriding the pad token drops e.g. the old `!` pad); every configured special
 * token is present.
 */
function reconcileAddedTokens(
  existing: AddedTokenJson[],
  special: ClipSpecialTokens,
  vocab: Record<string, number>,
  source: string,
): AddedTokenJson[] {
  const specialSet = new Set([
    special.bosToken,
    special.eosToken,
    special.unkToken,
    special.padToken,
    ...special.additional,
  ]);
  const out = existing.filter((t) => !t.special || specialSet.has(t.content));
  const wrapped = new Set([special.bosToken, special.eosToken, special.unkToken]);
  for (const content of specialSet) {
    if (out.some((t) => t.content === content)) continue;
    // transformers' CLIPTokenizer wraps bos/eos/unk in AddedToken(normalized=True); other special tokens
    // added from strings are matched unnormalized.
    out.push(specialAddedToken(content, vocabId(vocab, content, source), wrapped.has(content)));
  }
  return out.sort((a, b) => a.id - b.id);
}

/** Added tokens listed in tokenizer_config.json's `added_tokens_decoder`. */
function addedTokensFromConfig(config: Record<string, unknown>): AddedTokenJson[] {
  const decoder = config['added_tokens_decoder'];
  if (typeof decoder !== 'object' || decoder === null) return [];
  return Object.entries(decoder as Record<string, Record<string, unknown>>).map(([id, t]) => ({
    id: Number(id),
    content: String(t['content']),
    single_word: t['single_word'] === true,
    lstrip: t['lstrip'] === true,
    rstrip: t['rstrip'] === true,
    normalized: t['normalized'] !== false,
    special: t['special'] === true,
  }));
}

/**
 * The parts of tokenizer.json Kinema reads itself, checked before use so a malformed file is named rather
 * than failing deep inside (the rest of the pipeline is checked by @huggingface/tokenizers when it is built).
 */
function checkTokenizerJsonShape(json: ClipTokenizerJson, path: string): void {
  const bad = (what: string): never => {
    throw new KinemaError('TOKENIZER_INVALID', `${path}: ${what}`);
  };
  const model = json.model as unknown as Record<string, unknown> | null | undefined;
  if (typeof model !== 'object' || model === null || model['type'] !== 'BPE')
    bad('expected a BPE tokenizer.json (CLIP)');
  const vocab = model!['vocab'];
  if (typeof vocab !== 'object' || vocab === null || Array.isArray(vocab))
    bad('model.vocab must be an object');
  if (!Object.values(vocab as object).every((v) => Number.isInteger(v)))
    bad('model.vocab ids must be integers');
  const merges = model!['merges'];
  const isMerge = (m: unknown): boolean =>
    typeof m === 'string' || (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string'));
  if (!Array.isArray(merges) || !merges.every(isMerge))
    bad('model.merges must be a list of "a b" strings or [a, b] pairs');
  const added: unknown = json.added_tokens ?? [];
  const isAdded = (t: unknown): boolean =>
    typeof t === 'object' &&
    t !== null &&
    Number.isInteger((t as { id?: unknown }).id) &&
    typeof (t as { content?: unknown }).content === 'string';
  if (!Array.isArray(added) || !added.every(isAdded))
    bad('added_tokens must be a list of {id, content} objects');
}

/** tokenizer.json of a folder, or the equivalent built from vocab.json + merges.txt. */
async function loadTokenizerJson(
  dir: string,
  config: Record<string, unknown>,
  special: ClipSpecialTokens,
  files: FileLoader,
): Promise<ClipTokenizerJson> {
  const jsonPath = join(dir, 'tokenizer.json');
  if (files.kind(jsonPath) !== null) {
    const json = (await readJsonObject(jsonPath, files)) as unknown as ClipTokenizerJson;
    checkTokenizerJsonShape(json, jsonPath);
    json.added_tokens = reconcileAddedTokens(json.added_tokens ?? [], special, json.model.vocab, jsonPath);
    return json;
  }
  const vocabPath = join(dir, 'vocab.json');
  const mergesPath = join(dir, 'merges.txt');
  if (files.kind(vocabPath) === null || files.kind(mergesPath) === null) {
    throw new KinemaError(
      'TOKENIZER_INVALID',
      `${dir}: no tokenizer.json, and no vocab.json + merges.txt to build one from`,
    );
  }
  const vocab = (await readJsonObject(vocabPath, files)) as Record<string, number>;
  if (!Object.values(vocab).every((v) => Number.isInteger(v)))
    throw new KinemaError('TOKENIZER_INVALID', `${vocabPath}: ids must be integers`);
  const merges = parseMergesTxt(files.readText(mergesPath), mergesPath);
  const added = reconcileAddedTokens(addedTokensFromConfig(config), special, vocab, vocabPath);
  return buildClipTokenizerJson(vocab, merges, special, added);
}

// CJK ideograph blocks as in BERT's BasicTokenizer (`_is_chinese_char`).
const CJK_IDEOGRAPH =
  /([\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}])/gu;
// BasicTokenizer._clean_text: NUL, U+FFFD and category C* characters other than \t \n \r are dropped.
const CONTROL = /(?![\t\n\r])[\p{C}\u{FFFD}]/gu;

export class CLIPTokenizer {
  readonly modelMaxLength: number;
  readonly padToken: string;
  readonly padTokenId: number;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly special: ClipSpecialTokens;
  readonly tokenizerJson: ClipTokenizerJson;
  private readonly tokenizer: Tokenizer;
  private readonly slowCompat: boolean;

  constructor(tokenizerJson: ClipTokenizerJson, special: ClipSpecialTokens, opts: CLIPTokenizerOptions = {}) {
    this.tokenizerJson = tokenizerJson;
    this.special = special;
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, {
        clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? true,
      });
    } catch (err) {
      // @huggingface/tokenizers rejects malformed pipelines (an unknown pre-tokenizer or model type, …)
      // with plain Errors; name them as what they are, a tokenizer file Kinema cannot use.
      if (isKinemaError(err)) throw err;
      const detail = err instanceof Error ? err.message : String(err);
      throw new KinemaError('TOKENIZER_INVALID', `tokenizer.json cannot be built: ${detail}`, { cause: err });
    }
    this.modelMaxLength = special.modelMaxLength;
    this.padToken = special.padToken;
    const id = (token: string): number => {
      const v = this.tokenizer.token_to_id(token);
      if (v === undefined)
        throw new KinemaError(
          'TOKENIZER_INVALID',
          `special token ${JSON.stringify(token)} is not in the vocabulary`,
        );
      return v;
    };
    this.padTokenId = id(special.padToken);
    this.bosTokenId = id(special.bosToken);
    this.eosTokenId = id(special.eosToken);
    this.slowCompat = opts.slowTokenizerCompat ?? false;
  }

  /** Loads a tokenizer folder (tokenizer.json, or vocab.json + merges.txt; plus the config files if present). */
  static async fromPretrained(dir: string, opts: CLIPTokenizerOptions = {}): Promise<CLIPTokenizer> {
    const files = resolveLoader(opts.loader);
    const config = (await readJsonObject(join(dir, 'tokenizer_config.json'), files)) ?? {};
    const map = (await readJsonObject(join(dir, 'special_tokens_map.json'), files)) ?? {};
    const special = resolveSpecialTokens(config, map, opts);
    const cleanUp = config['clean_up_tokenization_spaces'];
    return new CLIPTokenizer(await loadTokenizerJson(dir, config, special, files), special, {
      ...opts,
      cleanUpTokenizationSpaces:
        opts.cleanUpTokenizationSpaces ?? (typeof cleanUp === 'boolean' ? cleanUp : true),
    });
  }

  private prepare(text: string): string {
    if (!this.slowCompat) return text;
    return text.replace(CONTROL, '').replace(CJK_IDEOGRAPH, ' $1 ');
  }

  /** BPE tokens of `text` (no bos/eos), e.g. `["a</w>", "red</w>"]`. */
  tokens(text: string): string[] {
    return this.tokenizer.tokenize(this.prepare(text));
  }

  /** Token ids of `text` without bos/eos, truncation or padding. */
  encodeRaw(text: string): number[] {
    return this.tokenizer.encode(this.prepare(text), { add_special_tokens: false }).ids;
  }

  /** bos + tokens + eos, truncated and padded like transformers' `tokenizer(text, padding=..., truncation=...)`. */
  encode(text: string, opts: EncodeOptions = {}): Encoded {
    const padding = opts.padding ?? 'max_length';
    const truncation = opts.truncation ?? true;
    const maxLength = opts.maxLength ?? this.modelMaxLength;
    if (!Number.isInteger(maxLength) || maxLength < 2)
      throw new KinemaError('TOKENIZER_INVALID', `maxLength must be an integer ≥ 2, got ${maxLength}`);
    let body = this.encodeRaw(text);
    if (truncation) body = body.slice(0, maxLength - 2);
    const inputIds = [this.bosTokenId, ...body, this.eosTokenId];
    const attentionMask = inputIds.map(() => 1);
    if (padding === 'max_length') {
      while (inputIds.length < maxLength) {
        inputIds.push(this.padTokenId);
        attentionMask.push(0);
      }
    }
    return { inputIds, attentionMask };
  }

  encodeBatch(
    texts: string[],
    opts: EncodeOptions = {},
  ): { inputIds: number[][]; attentionMask: number[][] } {
    const encoded = texts.map((t) => this.encode(t, opts));
    return { inputIds: encoded.map((e) => e.inputIds), attentionMask: encoded.map((e) => e.attentionMask) };
  }

  /** Text of token ids: bytes re-assembled, `</w>` → space (special tokens skipped by default). */
  decode(ids: number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids, { skip_special_tokens: opts.skipSpecialTokens ?? true }).trim();
  }

  /** Token → id for the whole vocabulary, added tokens included. */
  vocabulary(): Map<string, number> {
    return this.tokenizer.get_vocab(true);
  }
}
