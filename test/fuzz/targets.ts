// Fuzz targets: every reader and parser Kinema points at files made by others, each with a fast-check
// arbitrary of raw input bytes (random bytes, structured-but-wrong inputs, and mutations of a valid file)
// and the code that reads them the way Kinema does. The property (checkCase) is the same for all: the input
// loads, or a KinemaError with a code and a message comes out — never a TypeError from deep inside, a hang
// or a crash. Used by test/fuzz/fuzz.test.ts (a few hundred cases + the corpus replay) and scripts/fuzz.ts.
import fc from 'fast-check';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKinemaError } from '../../src/errors.js';
import { parseJsonLenient } from '../../src/io/json.js';
import { MemoryLoader } from '../../src/io/memory_loader.js';
import { readConfig, readModelIndex } from '../../src/io/model_folder.js';
import { SafetensorsFile, serializeSafetensors } from '../../src/io/safetensors_format.js';
import { TorchCheckpoint } from '../../src/io/torch_ckpt.js';
import { openVideo, writeVideo } from '../../src/io/video/index.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { parseClipTextConfig } from '../../src/models/clip/config.js';
import { parseUNet3DConfig } from '../../src/models/unet3d/config.js';
import { parseVaeConfig } from '../../src/models/vae/config.js';
import { checkModelIndex } from '../../src/pipelines/model_index.js';
import { schedulerFromConfig } from '../../src/schedulers/index.js';
import { parseGenerateArgs } from './cli_args.js';

export interface FuzzTarget {
  name: string;
  /** Input bytes to try (the corpus stores exactly these). */
  arbitrary: () => fc.Arbitrary<Uint8Array>;
  /** Reads the input as Kinema would; may throw a KinemaError. */
  run: (input: Uint8Array) => void | Promise<void>;
}

/** A case that takes longer than this is a failure (a hang, or work proportional to a size in a header). */
export const CASE_TIME_LIMIT_MS = 5000;

const enc = new TextEncoder();
const dec = new TextDecoder();
const MODEL = 'models/default';

/** Byte-level edits of a valid input: flips, overwrites, cuts, insertions, duplicated ranges. */
export function mutationsOf(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  type Bytes = Uint8Array<ArrayBufferLike>;
  const edit = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }) }),
  );
  return fc.array(edit, { minLength: 1, maxLength: 6 }).map((edits): Uint8Array => {
    let b: Bytes = Uint8Array.from(base);
    for (const e of edits) {
      const at = b.length === 0 ? 0 : e.at % b.length;
      if (e.kind === 'set') b[at] = e.value;
      else if (e.kind === 'flip') b[at] = b[at]! ^ (1 << e.bit);
      else if (e.kind === 'cut') b = b.slice(0, at);
      else if (e.kind === 'insert') b = concat(b.slice(0, at), e.bytes, b.slice(at));
      else b = concat(b.slice(0, at + e.len), b.slice(at, at + e.len), b.slice(at + e.len));
    }
    return Uint8Array.from(b);
  });
}

function concat(...parts: Uint8Array<ArrayBufferLike>[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** JSON values that stress a config parser: wrong types, absurd numbers, deep nesting. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(0, -1, 1e308, -1e308, 2 ** 53, 1e9, 0.5, '', '1', [], {}, null, true, [1e9, 1e9]),
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
);

/** A config object: the real file's keys with some values replaced, some keys dropped, some added. */
function configFrom(path: string): fc.Arbitrary<Uint8Array> {
  const base = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const keys = Object.keys(base);
  const structured = fc
    .record({
      replace: fc.dictionary(fc.constantFrom(...keys), hostileValue, { maxKeys: 4 }),
      drop: fc.subarray(keys, { maxLength: 3 }),
      extra: fc.dictionary(fc.string({ maxLength: 8 }), hostileValue, { maxKeys: 2 }),
    })
    .map(({ replace, drop, extra }) => {
      const o: Record<string, unknown> = { ...base, ...extra, ...replace };
      for (const k of drop) delete o[k];
      return enc.encode(JSON.stringify(o));
    });
  return fc.oneof(
    { weight: 6, arbitrary: structured },
    { weight: 2, arbitrary: mutationsOf(enc.encode(JSON.stringify(base, null, 1))) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => enc.encode(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

/** Runs `parse` on the bytes as `config.json` of a folder, through the loader Kinema reads folders with. */
function configTarget(
  name: string,
  file: string,
  parse: (o: Record<string, unknown>) => unknown,
): FuzzTarget {
  return {
    name,
    arbitrary: () => configFrom(file),
    run: (input) => {
      const loader = new MemoryLoader([['m/config.json', input]]);
      parse(readConfig('m', loader));
    },
  };
}

function safetensorsArbitrary(): fc.Arbitrary<Uint8Array> {
  const valid = serializeSafetensors(
    {
      a: { dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1.5) },
      b: { dtype: 'F16', shape: [4], data: new Uint16Array(4).fill(0x3c00) },
    },
    { format: 'pt' },
  );
  const entry = fc.record({
    dtype: fc.oneof(fc.constantFrom('F32', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F64', 'X'), hostileValue),
    shape: fc.oneof(
      fc.array(fc.oneof(fc.nat(8), fc.constantFrom(2 ** 31, 2 ** 53, 1e300, -1)), { maxLength: 4 }),
      hostileValue,
    ),
    data_offsets: fc.oneof(fc.tuple(fc.nat(64), fc.nat(64)), hostileValue),
  });
  const structured = fc
    .record({
      entries: fc.dictionary(fc.string({ maxLength: 6 }), entry, { maxKeys: 4 }),
      lengthDelta: fc.constantFrom(0, 0, 0, 1, -1, 2 ** 40),
      data: fc.uint8Array({ maxLength: 64 }),
    })
    .map(({ entries, lengthDelta, data }) => {
      const header = enc.encode(JSON.stringify(entries));
      const prefix = new Uint8Array(8);
      new DataView(prefix.buffer).setBigUint64(0, BigInt(Math.max(0, header.length + lengthDelta)), true);
      return concat(prefix, header, data);
    });
  return fc.oneof(
    { weight: 4, arbitrary: structured },
    { weight: 4, arbitrary: mutationsOf(valid) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  );
}

/** A scratch folder for targets whose readers take a path; removed at exit. */
let scratch: string | undefined;
function scratchDir(): string {
  if (!scratch) {
    scratch = mkdtempSync(join(tmpdir(), 'kinema-fuzz-'));
    const dir = scratch;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return scratch;
}
let fileCounter = 0;
function scratchFile(ext: string, bytes: Uint8Array): string {
  const p = join(scratchDir(), `case-${process.pid}-${fileCounter++}${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/** Small valid videos of every container, written once (the mutation bases of the video target). */
const videoBases = new Map<string, Uint8Array>();
export async function prepareVideoBases(): Promise<void> {
  if (videoBases.size > 0) return;
  const w = 16,
    h = 16;
  const frames = Array.from({ length: 3 }, (_, i) => new Uint8Array(w * h * 3).fill(40 + 60 * i));
  for (const ext of ['.mp4', '.webm', '.gif', '.webp']) {
    const p = join(scratchDir(), `base${ext}`);
    await writeVideo(p, frames, { width: w, height: h, fps: 8 });
    videoBases.set(ext, readFileSync(p));
  }
}

const CKPT_DIR = 'test/fixtures/torch_ckpt';
const CKPT_BASES = ['mixed_zip.pt', 'mixed_legacy.pt', 'lightning.ckpt'];

export const TARGETS: FuzzTarget[] = [
  {
    name: 'safetensors',
    arbitrary: safetensorsArbitrary,
    run: (input) => {
      const f = SafetensorsFile.fromBytes('fuzz.safetensors', input);
      for (const n of f.names()) {
        const info = f.info(n);
        if (info.dtype === 'F32' || info.dtype === 'F16' || info.dtype === 'BF16') f.readFloat32(n);
        else f.read(n);
      }
    },
  },
  {
    name: 'json',
    arbitrary: () =>
      fc.oneof(
        fc.string({ maxLength: 64 }).map((s) => enc.encode(s)),
        fc.json().map((s) => enc.encode(s)),
        mutationsOf(enc.encode('{"a": [1, 2.5e3, NaN, -Infinity], "b": {"c": "d\\u00e9"}}')),
      ),
    run: (input) => void parseJsonLenient(dec.decode(input), 'fuzz.json'),
  },
  configTarget('unet_config', `${MODEL}/unet/config.json`, parseUNet3DConfig),
  configTarget('vae_config', `${MODEL}/vae/config.json`, parseVaeConfig),
  configTarget('clip_text_config', `${MODEL}/text_encoder/config.json`, (o) => parseClipTextConfig(o)),
  configTarget('scheduler_config', `${MODEL}/scheduler/scheduler_config.json`, (o) => {
    const s = schedulerFromConfig(o);
    s.setTimesteps(4);
  }),
  {
    name: 'model_index',
    arbitrary: () => configFrom(`${MODEL}/model_index.json`),
    run: (input) => {
      const loader = new MemoryLoader([['m/model_index.json', input]]);
      checkModelIndex(readModelIndex('m', loader), 'm/model_index.json');
    },
  },
  {
    name: 'tokenizer',
    arbitrary: () => {
      const base = readFileSync(`${MODEL}/tokenizer/tokenizer.json`);
      return fc.oneof(mutationsOf(base), configFrom(`${MODEL}/tokenizer/tokenizer.json`));
    },
    run: async (input) => {
      const files: [string, Uint8Array][] = [['t/tokenizer.json', input]];
      for (const f of ['tokenizer_config.json', 'special_tokens_map.json'])
        files.push([`t/${f}`, readFileSync(`${MODEL}/tokenizer/${f}`)]);
      const tok = await CLIPTokenizer.fromPretrained('t', { loader: new MemoryLoader(files) });
      tok.encode('a red circle moves left on a blue background');
    },
  },
  {
    name: 'video',
    arbitrary: () =>
      fc
        .constantFrom(...['.mp4', '.webm', '.gif', '.webp'])
        .chain((ext) =>
          mutationsOf(videoBases.get(ext) ?? new Uint8Array()).map((b) => concat(enc.encode(ext), b)),
        ),
    run: async (input) => {
      // The first 4–5 bytes name the extension the file is written under ('.mp4', '.webm', …).
      const ext =
        ['.webm', '.webp', '.mp4', '.gif'].find((e) => dec.decode(input.slice(0, e.length)) === e) ?? '.mp4';
      const path = scratchFile(ext, input.slice(ext.length));
      try {
        const reader = await openVideo(path);
        try {
          let n = 0;
          for await (const _ of reader.frames()) if (++n > 64) break;
        } finally {
          await reader.close();
        }
      } finally {
        rmSync(path, { force: true });
      }
    },
  },
  {
    name: 'torch_ckpt',
    arbitrary: () => fc.oneof(...CKPT_BASES.map((f) => mutationsOf(readFileSync(join(CKPT_DIR, f))))),
    run: (input) => {
      const path = scratchFile('.pt', input);
      try {
        const ck = TorchCheckpoint.open(path);
        try {
          for (const k of ck.keys()) ck.read(k);
        } finally {
          ck.close();
        }
      } finally {
        rmSync(path, { force: true });
      }
    },
  },
  {
    name: 'cli_generate_args',
    arbitrary: () =>
      fc
        .array(
          fc.oneof(
            fc.constantFrom('--frames', '--width', '--height', '--steps', '--seed', '--guidance', '--fps'),
            fc.constantFrom(
              '--long',
              '--chunk',
              '--overlap',
              '--pns',
              '--dsg',
              '--scheduler',
              '--format',
              '-o',
            ),
            fc.constantFrom('0', '-1', '16', '7.5', '1e309', 'NaN', 'vidrd', 'naive', '5,3', 'x', '', '4000'),
            fc.string({ maxLength: 6 }),
          ),
          { maxLength: 10 },
        )
        .map((args) => enc.encode(JSON.stringify(args))),
    run: (input) => {
      const args = JSON.parse(dec.decode(input)) as string[];
      parseGenerateArgs(args);
    },
  },
];

export function mkdirScratch(name: string): string {
  const d = join(scratchDir(), name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** null when the case passes; otherwise what went wrong (a non-Kinema error, an uncoded error, a hang). */
export async function checkCase(target: FuzzTarget, input: Uint8Array): Promise<string | null> {
  const t0 = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.resolve().then(() => target.run(input)),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new HangError()), CASE_TIME_LIMIT_MS);
      }),
    ]);
  } catch (e) {
    if (e instanceof HangError) return `no answer within ${CASE_TIME_LIMIT_MS} ms`;
    if (!isKinemaError(e)) {
      // The innermost frame in our code says where a check is missing.
      const where =
        e instanceof Error ? (e.stack ?? '').split('\n').find((l) => /[\\/]src[\\/]/.test(l)) : undefined;
      const what = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
      return `not a KinemaError: ${what}${where ? ` (${where.trim()})` : ''}`;
    }
    if (!/^[A-Z][A-Z0-9_]+$/.test(e.code)) return `bad code ${JSON.stringify(e.code)}: ${e.message}`;
    if (e.message.trim() === '') return `${e.code} with an empty message`;
  } finally {
    clearTimeout(timer);
  }
  const ms = performance.now() - t0;
  return ms > CASE_TIME_LIMIT_MS ? `took ${ms.toFixed(0)} ms (limit ${CASE_TIME_LIMIT_MS})` : null;
}

class HangError extends Error {}
