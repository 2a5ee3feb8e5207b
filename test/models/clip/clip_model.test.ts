import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CLIPModel, ClipModelRoot, logitsPerImage } from '../../../src/models/clip/clip_model.js';
import { parseClipConfig } from '../../../src/models/clip/config.js';
import { evalCommand, type ClipLoader } from '../../../src/cli/eval.js';
import { loadClipEmbedder } from '../../../src/models/clip/embedder.js';
import { ModelLoadError } from '../../../src/io/model_folder.js';
import { loadSafetensors, writeSafetensors, type TensorToWrite } from '../../../src/io/safetensors.js';
import { trace } from '../../../src/engine/tensor.js';
import { interpret } from '../../../src/engine/interpret.js';
import { hostTensor, type HostTensor } from '../../../src/engine/runtime.js';
import { bindWeights } from '../../../src/nn/compile.js';
import {
  clipPreprocess,
  clipScore,
  cosineSimilarity,
  frameConsistency,
} from '../../../src/metrics/clip_metrics.js';
import { TINY_CLIP_CONFIG, assertClose, readGolden, writeTinyClipFolder } from './tiny_clip.js';

const TOKENIZER = resolve(
  process.cwd(),
  process.env['KINEMA_PARITY_FIXTURES'] ?? '../shared/fixtures/parity',
  'tokenizer',
);

const temps: string[] = [];
after(() => {
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'kinema-clip-model-'));
  temps.push(d);
  return d;
}

let clipDir: string | undefined;
/** The tiny CLIPModel plus the fixture tokenizer files (linked), like a hub CLIP folder. */
function tinyClipDir(): string {
  if (clipDir === undefined) {
    clipDir = tempDir();
    writeTinyClipFolder(clipDir);
    for (const f of [
      'vocab.json',
      'merges.txt',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
    ]) {
      symlinkSync(join(TOKENIZER, f), join(clipDir, f));
    }
  }
  return clipDir;
}

function row(t: { data: Float32Array; shape: number[] }, i: number): { data: Float32Array; shape: number[] } {
  const d = t.shape[1]!;
  return { data: t.data.slice(i * d, (i + 1) * d), shape: [1, d] };
}

test('CLIPModel image/text features and logits match the independent torch reference', async () => {
  const golden = readGolden();
  const model = await CLIPModel.fromPretrained(tinyClipDir());
  assert.equal(model.config.projectionDim, 12);
  assert.ok(Math.abs(model.logitScale - Math.exp(2.6592)) < 1e-5);
  const image = await model.getImageFeatures(golden.get('pixel_values').data, 3);
  assertClose('image_embeds', image, golden.get('image_embeds'));
  const text = await model.getTextFeatures(golden.ids);
  assertClose('text_embeds', text, golden.get('text_embeds'));
  const masked = await model.getTextFeatures(golden.ids, { attentionMask: golden.mask });
  assertClose('text_embeds (attention mask)', masked, golden.get('text_embeds_with_attention_mask'));
  const logits = logitsPerImage(image, text, model.logitScale);
  assertClose('logits_per_image', { shape: [3, 2], data: logits }, golden.get('logits_per_image'));
});

test('ONNX Runtime and the reference interpreter agree on the traced text-feature program', async () => {
  const golden = readGolden();
  const model = await CLIPModel.fromPretrained(tinyClipDir());
  const specs = [
    { name: 'input_ids', shape: [2, 77], dtype: 'int64' as const },
    { name: 'attention_mask', shape: [2, 77], dtype: 'int64' as const },
  ];
  const program = trace((ids, mask) => model.module.textFeatures(ids!, mask), specs);
  const feeds: Record<string, HostTensor> = {
    input_ids: hostTensor(golden.ids, [2, 77], 'int64'),
    attention_mask: hostTensor(golden.mask, [2, 77], 'int64'),
  };
  for (const [name, data] of bindWeights(program, model.stateDict)) {
    feeds[name] = hostTensor(data, program.inputs.find((i) => i.name === name)!.v.shape);
  }
  const ref = interpret(program, feeds)['out0']!;
  const onnx = await model.getTextFeatures(golden.ids, { attentionMask: golden.mask });
  assertClose('ORT vs interpreter text features', onnx, {
    data: Float32Array.from(ref.data as Float32Array),
    shape: [...ref.shape],
  });
});

test('CLIPModel loading is strict (buffers are dropped, stray or missing weights are errors)', async () => {
  const weights = loadSafetensors(join(tinyClipDir(), 'model.safetensors'));
  const write = (edit: (m: Map<string, TensorToWrite>) => void): string => {
    const dir = tempDir();
    writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY_CLIP_CONFIG));
    const m = new Map<string, TensorToWrite>(weights);
    edit(m);
    writeSafetensors(join(dir, 'model.safetensors'), m);
    return dir;
  };
  await assert.rejects(
    CLIPModel.fromPretrained(write((m) => m.delete('logit_scale'))),
    (e: unknown) => e instanceof ModelLoadError && /missing keys: logit_scale/.test(e.message),
  );
  const extra = { dtype: 'F32' as const, shape: [2], data: new Float32Array(2) };
  await assert.rejects(
    CLIPModel.fromPretrained(write((m) => m.set('vision_model.extra.bias', extra))),
    /unexpected keys: vision_model\.extra\.bias/,
  );
  const proj = { dtype: 'F32' as const, shape: [11, 16], data: new Float32Array(176) };
  await assert.rejects(
    CLIPModel.fromPretrained(write((m) => m.set('text_projection.weight', proj))),
    /shape mismatch for 'text_projection\.weight'/,
  );
  const noText = tempDir();
  writeFileSync(join(noText, 'config.json'), JSON.stringify({ ...TINY_CLIP_CONFIG, text_config: 3 }));
  await assert.rejects(CLIPModel.fromPretrained(noText), /"text_config" must be an object/);
});

/** Frames of a bright square drifting right over a gradient, RGB24. */
function syntheticVideo(frames: number, width: number, height: number): Uint8Array[] {
  return Array.from({ length: frames }, (_, f) => {
    const rgb = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const inSquare = x >= 6 + 3 * f && x < 20 + 3 * f && y >= 10 && y < 24;
        const i = (y * width + x) * 3;
        rgb[i] = inSquare ? 230 : (x * 4) % 256;
        rgb[i + 1] = inSquare ? 40 : (y * 5) % 256;
        rgb[i + 2] = inSquare ? 30 : 128;
      }
    }
    return rgb;
  });
}

test('loadClipEmbedder: features equal the reference; CLIP score and frame consistency in range', async () => {
  const golden = readGolden();
  const embedder = await loadClipEmbedder(tinyClipDir());
  assert.deepEqual(embedder.preprocess.cropSize, 32);
  assert.deepEqual(embedder.preprocess.shortestEdge, 32);
  const prompt = 'a red circle moving left';
  assert.deepEqual(
    embedder.tokenizer.encode(prompt).inputIds.slice(0, 7),
    Array.from(golden.ids.subarray(0, 7), Number),
  );
  // The tokenizer pads with "!" (id 0), the reference with <|endoftext|>: the pooled eos token sees neither.
  const textEmbedding = await embedder.embedText(prompt);
  assertClose(
    'embedText vs reference',
    { shape: [1, 12], data: textEmbedding },
    row(golden.get('text_embeds'), 0),
  );
  const images = await embedder.embedImages(golden.get('pixel_values').data, 3);
  assert.equal(images.length, 3);
  images.forEach((e, i) =>
    assertClose(
      `embedImages[${i}] vs reference`,
      { shape: [1, 12], data: e },
      row(golden.get('image_embeds'), i),
    ),
  );

  const video = { frames: syntheticVideo(5, 48, 40), width: 48, height: 40 };
  const opts = { preprocess: embedder.preprocess, batchSize: 2 };
  const scorePrompt = 'a dog running'; // the random model happens to give this one positive cosines
  const score = await clipScore(video, scorePrompt, embedder, opts);
  const consistency = await frameConsistency(video, embedder, opts);
  console.log(`tiny CLIP: clipScore ${score.toFixed(4)}, frameConsistency ${consistency.toFixed(6)}`);
  assert.ok(Number.isFinite(score) && score > 0 && score <= 100);
  assert.ok(Number.isFinite(consistency) && consistency >= -1 && consistency <= 1);
  // The same numbers from the features directly.
  const pixels = video.frames.map((f) => clipPreprocess(f, 48, 40, embedder.preprocess));
  const feats = await Promise.all(pixels.map((p) => embedder.embedImages(p, 1).then((r) => r[0]!)));
  const scoreText = await embedder.embedText(scorePrompt);
  const expectedScore =
    feats.reduce((s, e) => s + Math.max(100 * cosineSimilarity(e, scoreText), 0), 0) / feats.length;
  const expectedConsistency =
    feats.slice(1).reduce((s, e, i) => s + cosineSimilarity(feats[i]!, e), 0) / (feats.length - 1);
  assert.ok(Math.abs(score - expectedScore) < 1e-4, `clipScore ${score} vs ${expectedScore}`);
  assert.ok(
    Math.abs(consistency - expectedConsistency) < 1e-6,
    `frameConsistency ${consistency} vs ${expectedConsistency}`,
  );
  await assert.rejects(
    embedder.embedImages(new Float32Array(3 * 224 * 224), 1),
    /resize\/crop to image_size 32/,
  );
});

test('preprocessor_config.json must agree with the vision model size', async () => {
  const dir = tempDir();
  writeTinyClipFolder(dir);
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'])
    symlinkSync(join(TOKENIZER, f), join(dir, f));
  writeFileSync(
    join(dir, 'preprocessor_config.json'),
    JSON.stringify({
      size: { shortest_edge: 36 },
      crop_size: { height: 32, width: 32 },
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
    }),
  );
  const embedder = await loadClipEmbedder(dir);
  assert.deepEqual(embedder.preprocess, {
    shortestEdge: 36,
    cropSize: 32,
    mean: [0.5, 0.5, 0.5],
    std: [0.5, 0.5, 0.5],
  });
  writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify({ crop_size: 224 }));
  await assert.rejects(loadClipEmbedder(dir), /crop_size 224 differs from the vision model's image_size 32/);
});

test('kinema eval --clip: loadClipEmbedder plugs into the eval command (224-pixel tiny model)', async () => {
  const dir = tempDir();
  const config = {
    ...TINY_CLIP_CONFIG,
    vision_config: { ...TINY_CLIP_CONFIG.vision_config, image_size: 224, patch_size: 32 },
  };
  const root = new ClipModelRoot(parseClipConfig(config));
  const sd = root.initParameters(21);
  const shapes = root.namedParameters();
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  writeSafetensors(
    join(dir, 'model.safetensors'),
    new Map(
      [...sd].map(([k, v]) => [k, { dtype: 'F32' as const, shape: [...shapes.get(k)!.shape], data: v }]),
    ),
  );
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
    symlinkSync(join(TOKENIZER, f), join(dir, f));
  }
  const loader: ClipLoader = loadClipEmbedder;
  const video = resolve(process.cwd(), '../shared/fixtures/scenes/lowres_diffusion_64x64_8fps.mp4');
  const out = join(tempDir(), 'eval.json');
  const args = [
    video,
    '--clip',
    dir,
    '--prompt',
    'blurry blobs',
    '--json',
    out,
    '--no-progress',
    '--flow-size',
    'native',
  ];
  await evalCommand({ clipLoader: loader }).parseAsync(args, { from: 'user' }); // prints the metric table
  const doc = JSON.parse(readFileSync(out, 'utf8')) as {
    videos: { clip_score: number; frame_consistency: number; frames: number }[];
  };
  const v = doc.videos[0]!;
  console.log(
    `eval --clip: ${v.frames} frames, CLIP score ${v.clip_score}, frame consistency ${v.frame_consistency}`,
  );
  assert.equal(v.frames, 80);
  assert.ok(Number.isFinite(v.clip_score) && v.clip_score >= 0 && v.clip_score <= 100);
  assert.ok(Number.isFinite(v.frame_consistency) && v.frame_consistency >= -1 && v.frame_consistency <= 1);
});
