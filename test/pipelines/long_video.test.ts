// The chunked long-video core and its modes on a tiny model the test makes (the parity fixture's tokenizer,
// text encoder and VAE, a randomly initialised UNet3D): chunk layout, naive replacement, and VidRD's FNR
// reversal, PNS schedule and DSG stage switch pinned against values recomputed from the seeded stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Generator } from '../../src/engine/random.js';
import { CLIPTokenizer } from '../../src/models/clip/tokenizer.js';
import { CLIPTextModel } from '../../src/models/clip/text_model.js';
import { UNet3DConditionModel } from '../../src/models/unet3d/unet3d.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { loadScheduler } from '../../src/schedulers/index.js';
import { TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import {
  chunkFrames,
  generateLongVideo,
  levelAfter,
  planChunks,
  renoise,
} from '../../src/pipelines/long_video/chunked.js';
import type { LongVideoEvent, LongVideoMode } from '../../src/pipelines/long_video/chunked.js';
import { naiveMode } from '../../src/pipelines/long_video/naive.js';
import { sliceFrames } from '../../src/pipelines/long_video/latent_frames.js';
import type { LatentShape } from '../../src/pipelines/long_video/latent_frames.js';
import {
  checkVidrd,
  dsgStrength,
  fnrNoise,
  pnsMix,
  pnsWeight,
  vidrdMode,
} from '../../src/pipelines/vidrd.js';

const FIX = resolve(
  process.env['KINEMA_PARITY_FIXTURES'] ?? resolve(process.cwd(), '../shared/fixtures/parity'),
);

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

const BASE = { prompt: 'a red circle', height: 16, width: 16, seed: 3, guidanceScale: 5 };

async function collect(pipe: TextToVideoPipeline, mode: LongVideoMode, o: Record<string, number>) {
  const events: LongVideoEvent[] = [];
  for await (const e of generateLongVideo(
    pipe,
    {
      ...BASE,
      numFrames: o['frames']!,
      chunk: o['chunk']!,
      overlap: o['overlap']!,
      numInferenceSteps: o['steps']!,
    },
    mode,
  )) {
    // Step events share the pipeline's buffer: keep a copy.
    if (e.kind === 'step')
      events.push({ ...e, latents: { ...e.latents, data: (e.latents.data as Float32Array).slice() } });
    else events.push(e);
  }
  return events;
}

const starts = (ev: LongVideoEvent[]) => ev.filter((e) => e.kind === 'chunk-start');
const stepsOf = (ev: LongVideoEvent[], chunk: number) =>
  ev
    .filter((e) => e.kind === 'step' && e.chunk === chunk)
    .map((e) => (e.kind === 'step' ? (e.latents.data as Float32Array) : new Float32Array()));

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('chunk plan: F, then F − O new frames per chunk, every frame once; bad layouts are named errors', () => {
  const plan = planChunks(40, 16, 8);
  assert.equal(plan.chunks, 4);
  const covered: number[] = [];
  for (let k = 0; k < plan.chunks; k++) {
    const { from, to } = chunkFrames(plan, k);
    for (let f = from; f < to; f++) covered.push(f);
  }
  assert.deepEqual(
    covered,
    Array.from({ length: 40 }, (_, i) => i),
  );
  assert.deepEqual(chunkFrames(planChunks(41, 16, 8), 4), { start: 32, from: 40, to: 41 });
  assert.equal(planChunks(16, 16, 8).chunks, 1);
  assert.throws(() => planChunks(64, 16, 16), { code: 'LONG_OVERLAP_TOO_LARGE' });
  assert.throws(() => planChunks(64, 16, 20), { code: 'LONG_OVERLAP_TOO_LARGE' });
  assert.throws(() => planChunks(8, 16, 4), { code: 'LONG_TOO_FEW_FRAMES' });
});

test('FNR: overlap frames keep their noise, new frames take it reversed from the boundary', () => {
  const shape: LatentShape = { channels: 2, frames: 6, height: 1, width: 2 };
  // Value = 100·channel + frame, so the frame each value came from can be read back.
  const prev = new Float32Array(2 * 6 * 2).map((_, i) => 100 * Math.floor(i / 12) + Math.floor((i % 12) / 2));
  const out = fnrNoise(prev, shape, 2);
  const frameOf = (f: number, c: number) => out[(c * 6 + f) * 2]! - 100 * c;
  for (const c of [0, 1])
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((f) => frameOf(f, c)),
      [4, 5, 5, 4, 3, 2],
    );
  // Without overlap it is the paper's plain reversal.
  const plain = fnrNoise(prev, shape, 0);
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((f) => plain[f * 2]!),
    [5, 4, 3, 2, 1, 0],
  );
});

test('PNS: fresh-noise weight min(1, d / W), variance-preserving mix of the new frames only', () => {
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((d) => pnsWeight(d, 4)),
    [0.25, 0.5, 0.75, 1, 1],
  );
  const shape: LatentShape = { channels: 1, frames: 4, height: 1, width: 1 };
  const noise = Float32Array.of(1, 2, 3, 4);
  pnsMix(noise, Float32Array.of(10, 20), shape, 2, 2);
  assert.deepEqual([...noise.slice(0, 2)], [1, 2]);
  assert.ok(Math.abs(noise[2]! - (Math.sqrt(0.5) * 3 + Math.sqrt(0.5) * 10)) < 1e-5);
  assert.ok(Math.abs(noise[3]! - 20) < 1e-5, 'at d = W the noise is all fresh');
});

test('DSG: hold 1 − k/K in stage k, 0 from the last boundary on; checks name bad stages', () => {
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((s) => dsgStrength(s, [2, 4])),
    [1, 1, 0.5, 0.5, 0, 0],
  );
  assert.deepEqual(
    [0, 1, 2].map((s) => dsgStrength(s, null)),
    [1, 1, 1],
  );
  const plan = planChunks(32, 16, 8);
  assert.throws(() => checkVidrd({ dsg: [10, 30] }, plan, 25), { code: 'VIDRD_DSG_PAST_STEPS' });
  assert.throws(() => checkVidrd({ dsg: [10, 5] }, plan, 25), { code: 'VIDRD_BAD_DSG' });
  assert.throws(() => checkVidrd({ fnr: false, pns: 4 }, plan, 25), { code: 'VIDRD_PNS_NEEDS_FNR' });
  assert.doesNotThrow(() => checkVidrd({}, plan, 25));
  assert.doesNotThrow(() => checkVidrd({ fnr: false }, plan, 25));
});

test('VidRD on a tiny model: FNR + PNS starting noise from the seeded stream, DSG holds then releases', async () => {
  const pipe = await tinyPipeline();
  const o = { frames: 6, chunk: 4, overlap: 2, steps: 6 };
  const ev = await collect(pipe, vidrdMode({ pns: 2, dsg: [2, 4] }), o);
  const done = ev.filter((e) => e.kind === 'chunk-done');
  assert.deepEqual(
    done.map((e) => (e.kind === 'chunk-done' ? [e.firstFrame, e.frames.length] : [])),
    [
      [0, 4],
      [4, 2],
    ],
  );
  const shape: LatentShape = { channels: 4, frames: 4, height: 8, width: 8 };
  // The stream: chunk 0's noise, then chunk 1's fresh PNS noise for its two new frames.
  const gen = new Generator(BASE.seed);
  const noise0 = gen.normal(4 * 4 * 64);
  const fresh = gen.normal(4 * 2 * 64);
  const [s0, s1] = starts(ev).map((e) =>
    e.kind === 'chunk-start' ? (e.latents.data as Float32Array) : new Float32Array(),
  );
  assert.equal(maxDiff(s0!, noise0), 0);
  const want = fnrNoise(noise0, shape, 2);
  pnsMix(want, fresh, shape, 2, 2);
  assert.ok(
    maxDiff(sliceFrames(s1!, shape, 2, 2), sliceFrames(want, shape, 2, 2)) < 1e-6,
    'new frames: FNR + PNS',
  );
  // DSG: the overlap frames equal the written latents noised to each step's level in stage 1 (hold 1),
  // and are no longer equal once the hold loosens (steps 2, 3) and is released (4, 5).
  const c0 = stepsOf(ev, 0);
  const written = sliceFrames(c0.at(-1)!, shape, 2, 2);
  const overlapNoise = sliceFrames(noise0, shape, 2, 2); // FNR keeps the overlap frames' own noise
  const { alphasCumprod, timesteps } = pipe.components.scheduler;
  const c1 = stepsOf(ev, 1);
  c1.forEach((x, i) => {
    const target = renoise(written, overlapNoise, levelAfter({ timesteps }, i), alphasCumprod);
    const d = maxDiff(sliceFrames(x, shape, 0, 2), target);
    if (i < 2) assert.ok(d < 1e-5, `step ${i}: held (${d})`);
    else assert.ok(d > 1e-3, `step ${i}: free of the hold (${d})`);
  });
});

test('naive continuation: the overlap frames are the written ones, re-noised at every step', async () => {
  const pipe = await tinyPipeline();
  const ev = await collect(pipe, naiveMode(), { frames: 6, chunk: 4, overlap: 2, steps: 3 });
  const shape: LatentShape = { channels: 4, frames: 4, height: 8, width: 8 };
  const written = sliceFrames(stepsOf(ev, 0).at(-1)!, shape, 2, 2);
  const last = stepsOf(ev, 1).at(-1)!;
  assert.ok(maxDiff(sliceFrames(last, shape, 0, 2), written) < 1e-6, 'final overlap = written latents');
  const frames = ev.flatMap((e) => (e.kind === 'chunk-done' ? e.frames : []));
  assert.equal(frames.length, 6);
  assert.equal(frames[0]!.length, 16 * 16 * 3);
});

test('an untrained temporal decoder (zero-initialised) decodes long videos as the image decoder does', async () => {
  const pipe = await tinyPipeline();
  const base = pipe.components.vae;
  const cfg = JSON.parse(readFileSync(join(FIX, 'vae', 'config.json'), 'utf8')) as Record<string, unknown>;
  const temporal = AutoencoderKL.fromConfig({ ...cfg, temporal_decoder: true });
  const sd = temporal.initParameters(9);
  for (const [k, v] of base.stateDict) sd.set(k, v);
  temporal.loadWeights(sd);
  const withTemporal = new TextToVideoPipeline({ ...pipe.components, vae: temporal });
  const o = { frames: 6, chunk: 4, overlap: 2, steps: 2 };
  const framesOf = (ev: LongVideoEvent[]) => ev.flatMap((e) => (e.kind === 'chunk-done' ? e.frames : []));
  const a = framesOf(await collect(pipe, naiveMode(), o));
  const b = framesOf(await collect(withTemporal, naiveMode(), o));
  assert.equal(b.length, 6);
  a.forEach((f, i) => {
    let m = 0;
    for (let k = 0; k < f.length; k++) m = Math.max(m, Math.abs(f[k]! - b[i]![k]!));
    assert.ok(m <= 1, `frame ${i}: max difference ${m}`);
  });
});

test('firstChunk: the first window comes from the given loop (image-to-video), the rest from the mode', async () => {
  const pipe = await tinyPipeline();
  const shape: LatentShape = { channels: 4, frames: 4, height: 8, width: 8 };
  const asked: number[] = [];
  // A stand-in for the image adapter: pins frame 0's latents to 0.5 after every step, as replacement would.
  async function* pinned(o: Parameters<typeof pipe.generate>[0]) {
    asked.push(o.numFrames ?? -1);
    for await (const e of pipe.generate(o)) {
      if (e.kind === 'step') {
        const x = e.latents.data as Float32Array;
        for (let c = 0; c < 4; c++) x.fill(0.5, c * 4 * 64, c * 4 * 64 + 64);
      }
      yield e;
    }
  }
  const events: LongVideoEvent[] = [];
  for await (const e of generateLongVideo(
    pipe,
    { ...BASE, numFrames: 6, chunk: 4, overlap: 2, numInferenceSteps: 2, firstChunk: pinned },
    naiveMode(),
  ))
    events.push(
      e.kind === 'step'
        ? { ...e, latents: { ...e.latents, data: (e.latents.data as Float32Array).slice() } }
        : e,
    );
  assert.deepEqual(asked, [4], 'called once, for the first window');
  const first = stepsOf(events, 0).at(-1)!;
  assert.ok(maxDiff(sliceFrames(first, shape, 0, 1), new Float32Array(256).fill(0.5)) < 1e-7);
  const second = stepsOf(events, 1).at(-1)!;
  assert.ok(
    maxDiff(sliceFrames(second, shape, 0, 1), new Float32Array(256).fill(0.5)) > 0.01,
    "chunk 1 is the mode's",
  );
  assert.equal(events.flatMap((e) => (e.kind === 'chunk-done' ? e.frames : [])).length, 6);
});
