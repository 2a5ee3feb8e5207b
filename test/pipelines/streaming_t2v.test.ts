// `--long streaming` (StreamingT2V) on a tiny model the test makes: untrained (zero-initialised) adapters give
// exactly the video of fresh-noise continuation with the base UNet; trained ones change every chunk after the
// first and leave the first (the base's own video) alone; the adapters folder loads strictly, refuses
// adapters of another base, and a wrong overlap is a named error before any work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Generator } from '../../src/engine/random.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import { generateLongVideo } from '../../src/pipelines/long_video/chunked.js';
import type { LongVideoMode } from '../../src/pipelines/long_video/chunked.js';
import { StreamingAdapters } from '../../src/models/streaming/streaming_unet.js';
import type { StreamingConfig } from '../../src/models/streaming/config.js';
import { ClipImageEncoder } from '../../src/models/clip/image_encoder.js';
import { StreamingAdaptersBundle } from '../../src/pipelines/streaming_t2v.js';
import { writeStreamingAdapters } from '../../src/training/stages/cam_apm.js';
import { ParameterSubset } from '../../src/training/parameter_subset.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { writeTinyClipFolder, writeTinyVisionFolder } from '../models/clip/tiny_clip.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);
const CONFIG: StreamingConfig = {
  condFrames: 2,
  condEmbeddingChannels: [4, 8],
  mergerHeads: 4,
  imageEmbedDim: 12,
  imageTokens: 3,
  textTokens: 77,
};
const RUN = { prompt: 'a red circle', height: 16, width: 16, seed: 3, guidanceScale: 5 };
const LAYOUT = { numFrames: 8, chunk: 4, overlap: 2, numInferenceSteps: 3 };

async function tinyPipeline(): Promise<TextToVideoPipeline> {
  const cfg = JSON.parse(readFileSync(join(FIX, 'unet3d', 'config.json'), 'utf8')) as Record<string, unknown>;
  const unet = UNet3DConditionModel.fromConfig(cfg);
  unet.initParameters(5);
  return new TextToVideoPipeline({
    tokenizer: await CLIPTokenizer.fromPretrained(join(FIX, 'tokenizer')),
    textEncoder: await CLIPTextModel.fromPretrained(join(FIX, 'text_encoder')),
    unet,
    vae: await AutoencoderKL.fromPretrained(join(FIX, 'vae')),
    scheduler: await loadScheduler(join(FIX, 'scheduler', 'ddim')),
  });
}

async function video(
  pipe: TextToVideoPipeline,
  mode: LongVideoMode,
  layout = LAYOUT,
): Promise<Uint8Array[][]> {
  const chunks: Uint8Array[][] = [];
  for await (const e of generateLongVideo(pipe, { ...RUN, ...layout }, mode))
    if (e.kind === 'chunk-done') chunks.push(e.frames);
  return chunks;
}

/** Continuation from fresh noise with the base UNet alone: what untrained adapters must reproduce. */
const freshNoise: LongVideoMode = {
  name: 'fresh',
  initialLatents: (c) =>
    c.generator.normal(c.shape.channels * c.shape.frames * c.shape.height * c.shape.width),
};

function maxDiff(a: Uint8Array[][], b: Uint8Array[][]): number {
  let m = 0;
  a.forEach((chunk, i) =>
    chunk.forEach((f, j) => f.forEach((v, k) => (m = Math.max(m, Math.abs(v - b[i]![j]![k]!))))),
  );
  return m;
}

test('StreamingT2V mode: untrained adapters = fresh-noise continuation; trained ones change chunks 2… only', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-streaming-'));
  try {
    writeTinyVisionFolder(root);
    const encoder = await ClipImageEncoder.fromFolder(root);
    const pipe = await tinyPipeline();
    const unet = pipe.components.unet;
    const adapters = new StreamingAdapters(unet.config, CONFIG);
    const bundle = StreamingAdaptersBundle.untrained(unet, adapters, encoder);
    const reference = await video(pipe, freshNoise);
    assert.equal(reference.length, 3);
    for (const guidance of ['all', 'text'] as const)
      assert.equal(maxDiff(await video(pipe, bundle.mode(pipe, { guidance })), reference), 0, guidance);
    // Trained adapters: every zero-initialised output moved off zero.
    const g = new Generator(4);
    for (const [k, v] of bundle.weights)
      if (/proj_out|controlnet_cond_embedding\.conv_out|\.alpha$/.test(k) && !k.startsWith('up_'))
        bundle.weights.set(
          k,
          g.normal(v.length).map((x) => x * 0.5),
        );
    const trained = StreamingAdaptersBundle.untrained(unet, adapters, encoder);
    for (const [k, v] of bundle.weights) trained.weights.set(k, v);
    const moved = await video(pipe, trained.mode(pipe));
    assert.equal(maxDiff([moved[0]!], [reference[0]!]), 0, 'the first chunk is the base model’s own video');
    assert.ok(maxDiff(moved.slice(1), reference.slice(1)) > 2, 'later chunks follow the adapters');
    assert.ok(maxDiff(await video(pipe, trained.mode(pipe, { apm: false })), moved) > 0, 'the APM acts');
    // The overlap must be the adapters' F_cond: named, before any work.
    await assert.rejects(
      video(pipe, bundle.mode(pipe), { ...LAYOUT, overlap: 1 }),
      (e: Error & { code?: string }) =>
        e.code === 'LONG_STREAMING_OVERLAP' && /--overlap must be 2/.test(e.message),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function writeUnet(dir: string, unet: UNet3DConditionModel): void {
  mkdirSync(dir, { recursive: true });
  cpSync(join(FIX, 'unet3d', 'config.json'), join(dir, 'config.json'));
  const specs = unet.namedParameters();
  writeSafetensors(
    join(dir, 'diffusion_pytorch_model.safetensors'),
    new Map(
      [...unet.stateDict].map(([k, v]) => [
        k,
        { dtype: 'F32' as const, shape: [...specs.get(k)!.shape], data: v },
      ]),
    ),
  );
}

test('streaming/ + image_encoder/ next to a pipeline folder: written, loaded strictly, refused on another base', async () => {
  const root = mkdtempSync(join(tmpdir(), 'kinema-streaming-folder-'));
  try {
    const unet = (await tinyPipeline()).components.unet;
    const model = join(root, 'model');
    writeUnet(join(model, 'unet'), unet);
    const clip = join(root, 'clip');
    mkdirSync(clip);
    writeTinyClipFolder(clip);
    writeFileSync(
      join(clip, 'preprocessor_config.json'),
      JSON.stringify({
        size: { shortest_edge: 32 },
        crop_size: 32,
        image_mean: [0.5, 0.5, 0.5],
        image_std: [0.5, 0.5, 0.5],
      }),
    );
    await assert.rejects(
      StreamingAdaptersBundle.load(model, unet),
      (e: Error & { code?: string }) =>
        e.code === 'STREAMING_NO_ADAPTERS' && /kinema train cam-apm/.test(e.message),
    );
    const adapters = new StreamingAdapters(unet.config, CONFIG);
    const weights = adapters.initFrom(unet.stateDict, 1);
    const encoder = await ClipImageEncoder.fromClipModel(clip);
    writeStreamingAdapters(model, {
      clipDir: clip,
      encoder,
      config: CONFIG,
      module: new ParameterSubset(adapters, () => true),
      weights,
      baseUnetWeights: readFileSync(join(model, 'unet', 'diffusion_pytorch_model.safetensors')),
    });
    const loaded = await StreamingAdaptersBundle.load(model, unet);
    assert.equal(loaded.condFrames, 2);
    const key = 'cross_attention_merger_mid_block.temporal_transformer.proj_in.weight';
    const [stored, want] = [loaded.weights.get(key)!, weights.get(key)!];
    assert.ok(
      stored.every((v, i) => Math.abs(v - want[i]!) <= 2e-3 * Math.max(1, Math.abs(want[i]!))),
      'fp16 round trip',
    );
    // The shipped image encoder embeds as the CLIPModel it came from.
    const frame = new Uint8Array(16 * 16 * 3).map((_, i) => (i * 37) % 256);
    const [a, b] = [await encoder.embed([frame], 16, 16), await loaded.anchorEncoder.embed([frame], 16, 16)];
    assert.ok(
      a.every((v, i) => Math.abs(v - b[i]!) < 2e-2),
      'image_encoder/ = the CLIP vision tower (fp16)',
    );
    // Another base: the fingerprint no longer matches.
    const other = new UNet3DConditionModel(unet.config);
    other.initParameters(9);
    writeUnet(join(model, 'unet'), other);
    await assert.rejects(
      StreamingAdaptersBundle.load(model, other),
      (e: Error & { code?: string }) =>
        e.code === 'STREAMING_WRONG_BASE' && /trained on another base UNet/.test(e.message),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the shipped adapters (models/default/streaming) load on models/default and steer the chunks after the first', async (t) => {
  if (!existsSync('models/default/streaming/config.json'))
    return t.skip('models/default has no streaming/ adapters');
  const pipe = await TextToVideoPipeline.fromPretrained('models/default');
  const bundle = await StreamingAdaptersBundle.load('models/default', pipe.components.unet);
  assert.equal(bundle.condFrames, 8);
  const layout = { numFrames: 24, chunk: 16, overlap: 8, numInferenceSteps: 2 };
  const run = {
    ...RUN,
    prompt: 'a yellow square moves right on a purple background',
    width: 64,
    height: 64,
    fps: 8,
  };
  const collect = async (mode: LongVideoMode) => {
    const out: Uint8Array[][] = [];
    for await (const e of generateLongVideo(pipe, { ...run, ...layout }, mode))
      if (e.kind === 'chunk-done') out.push(e.frames);
    return out;
  };
  const [streamed, fresh] = [await collect(bundle.mode(pipe)), await collect(freshNoise)];
  assert.equal(maxDiff([streamed[0]!], [fresh[0]!]), 0, 'first chunk: the base model');
  assert.ok(maxDiff([streamed[1]!], [fresh[1]!]) > 0, 'second chunk: the trained adapters act');
});
