// The streaming video-to-video refiner (StreamingT2V §4.3) on a tiny model the test makes (the parity fixture's
// tokenizer, text encoder and VAE, a randomly initialised UNet3D): randomized blending copies exactly the
// frames the drawn split says, shared noise is shared, bad strengths fail before any work, every input frame
// comes out once, the input is pulled lazily, and a seed reproduces the output.
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
import { postprocess, TextToVideoPipeline } from '../../src/pipelines/text_to_video.js';
import { hostTensor } from '../../src/engine/runtime.js';
import { refineChunkCount, refineVideo, sdeditTimesteps } from '../../src/pipelines/long_video/refine.js';
import type { RefineEvent, RefineOptions } from '../../src/pipelines/long_video/refine.js';
import { sliceFrames } from '../../src/pipelines/long_video/latent_frames.js';
import type { LatentShape } from '../../src/pipelines/long_video/latent_frames.js';

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

const [W, H] = [16, 16];
/** A seeded random RGB24 video (a refiner must cope with any input; the random UNet makes nothing of it). */
const video = (n: number, seed = 1) => {
  const g = new Generator(seed);
  return Array.from({ length: n }, () => Uint8Array.from(g.uniform(W * H * 3), (u) => Math.floor(u * 256)));
};
const BASE: RefineOptions = { prompt: 'a red circle', width: W, height: H, seed: 7, guidanceScale: 5 };
// 4 DDIM steps (leading spacing: 751, 501, 251, 1) from T' = 600: 3 SDEdit steps.
const SMALL = { ...BASE, chunk: 6, overlap: 3, numInferenceSteps: 4 };

async function collect(pipe: TextToVideoPipeline, frames: Iterable<Uint8Array>, o: RefineOptions) {
  const events: RefineEvent[] = [];
  for await (const e of refineVideo(pipe, frames, o))
    // Step events carry the pipeline's buffer: keep a copy.
    events.push(e.kind === 'step' ? { ...e, latents: { ...e.latents, data: e.latents.data.slice() } } : e);
  return events;
}

const stepsOf = (ev: RefineEvent[], chunk: number) =>
  ev.flatMap((e) => (e.kind === 'step' && e.chunk === chunk ? [e] : []));
const noiseOf = (ev: RefineEvent[], chunk: number) => {
  const e = ev.find((x) => x.kind === 'chunk-start' && x.chunk === chunk);
  assert.ok(e && e.kind === 'chunk-start');
  return { noise: e.noise.data as Float32Array, length: e.length };
};
const outputOf = (ev: RefineEvent[]) => ev.flatMap((e) => (e.kind === 'chunk-done' ? e.frames : []));
const shapeOf = (frames: number): LatentShape => ({ channels: 4, frames, height: H / 2, width: W / 2 });

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('randomized blending: after every step chunk k holds chunk k−1’s latents on [0, f_thr) exactly, its own after', async () => {
  const pipe = await tinyPipeline();
  const ev = await collect(pipe, video(12), { ...SMALL, blend: 'random' }); // chunks [0,6) [3,9) [6,12)
  const [F, O] = [6, 3];
  const splits: number[] = [];
  for (const k of [1, 2]) {
    const prev = stepsOf(ev, k - 1);
    const cur = stepsOf(ev, k);
    assert.equal(cur.length, 3, 'T′ = 600 of a 4-step schedule: 3 steps');
    assert.deepEqual(
      cur.map((e) => e.timestep),
      prev.map((e) => e.timestep),
    );
    for (const [i, e] of cur.entries()) {
      const f = e.split!;
      assert.ok(Number.isInteger(f) && f >= 0 && f < O, `split ${f} in [0, O)`);
      splits.push(f);
      const mine = e.latents.data as Float32Array;
      const theirs = prev[i]!.latents.data as Float32Array;
      if (f > 0)
        assert.equal(
          maxDiff(sliceFrames(mine, shapeOf(F), 0, f), sliceFrames(theirs, shapeOf(F), F - O, f)),
          0,
          `chunk ${k} step ${i}: frames [0, ${f}) are chunk ${k - 1}'s`,
        );
      const rest = maxDiff(
        sliceFrames(mine, shapeOf(F), f, O - f),
        sliceFrames(theirs, shapeOf(F), F - O + f, O - f),
      );
      assert.ok(rest > 1e-4, `chunk ${k} step ${i}: frames [${f}, ${O}) are its own (max diff ${rest})`);
    }
  }
  assert.ok(
    stepsOf(ev, 0).every((e) => e.split === null),
    'the first chunk is not blended',
  );
  // What is written of an overlap: chunk k−1's frames before the last step's split (so the screen shows them).
  const out = outputOf(ev);
  assert.equal(out.length, 12);
  let checked = 0;
  for (const k of [1, 2]) {
    const f = stepsOf(ev, k).at(-1)!.split!;
    if (f === 0) continue;
    const prevFinal = stepsOf(ev, k - 1).at(-1)!.latents.data as Float32Array;
    const theirs = postprocess(
      await pipe.decodeLatents(
        hostTensor(sliceFrames(prevFinal, shapeOf(F), F - O, f), [1, 4, f, H / 2, W / 2]),
      ),
    ).frames;
    for (let j = 0; j < f; j++) {
      const mine = out[3 * k + j]!;
      assert.ok(
        mine.every((v, i) => Math.abs(v - theirs[j]![i]!) <= 1),
        `frame ${3 * k + j} is chunk ${k - 1}'s`,
      );
      checked++;
    }
  }
  assert.ok(checked > 0, 'some final split was above 0');
  // The splits are the seeded uniform draws ⌊u · O⌋ of the video's split stream, in order.
  const g = new Generator(7n | (1n << 63n));
  assert.deepEqual(
    splits,
    Array.from(g.uniform(splits.length), (u) => Math.floor(u * O)),
  );
  assert.ok(new Set(splits).size > 1, `the split varies from step to step: ${splits}`);
});

test('shared noise: chunk k’s overlap starts from chunk k−1’s noise of those frames; independent draws its own', async () => {
  const pipe = await tinyPipeline();
  const [F, O] = [6, 3];
  const rows = new Map<string, RefineEvent[]>();
  for (const blend of ['shared-noise', 'independent', 'random'] as const)
    rows.set(blend, await collect(pipe, video(9), { ...SMALL, blend }));
  const overlapGap = (ev: RefineEvent[]) =>
    maxDiff(
      sliceFrames(noiseOf(ev, 1).noise, shapeOf(F), 0, O),
      sliceFrames(noiseOf(ev, 0).noise, shapeOf(F), F - O, O),
    );
  assert.equal(overlapGap(rows.get('shared-noise')!), 0);
  assert.equal(overlapGap(rows.get('random')!), 0);
  assert.ok(overlapGap(rows.get('independent')!) > 0.5, 'independent noise differs');
  // No blending in the two ablation rows; every row starts chunk 0 from the same noise.
  assert.ok(stepsOf(rows.get('shared-noise')!, 1).every((e) => e.split === null));
  assert.ok(stepsOf(rows.get('independent')!, 1).every((e) => e.split === null));
  assert.equal(maxDiff(noiseOf(rows.get('independent')!, 0).noise, noiseOf(rows.get('random')!, 0).noise), 0);
  // Shared noise alone does not glue the chunks: without the blend, chunk 1's overlap drifts from chunk 0's.
  const s = rows.get('shared-noise')!;
  const last = (k: number) => stepsOf(s, k).at(-1)!.latents.data as Float32Array;
  assert.ok(
    maxDiff(sliceFrames(last(1), shapeOf(F), 0, O), sliceFrames(last(0), shapeOf(F), F - O, O)) > 1e-4,
  );
});

test('bad strength, layout or input: named errors before any frame is read', async () => {
  const pipe = await tinyPipeline();
  let pulled = 0;
  const untouchable: Iterable<Uint8Array> = {
    [Symbol.iterator]() {
      pulled++;
      return [][Symbol.iterator]();
    },
  };
  const code = async (o: Partial<RefineOptions>, frames: Iterable<Uint8Array> = untouchable) => {
    try {
      for await (const _ of refineVideo(pipe, frames, { ...SMALL, ...o }));
      return 'ok';
    } catch (e) {
      return (e as { code?: string }).code;
    }
  };
  // The smallest timestep of the 4-step schedule is 1: T' = 0 leaves no step.
  assert.equal(await code({ strength: 0 }), 'REFINE_BAD_STRENGTH');
  assert.equal(await code({ strength: -5 }), 'REFINE_BAD_STRENGTH');
  assert.equal(await code({ strength: 1000 }), 'REFINE_BAD_STRENGTH');
  assert.equal(await code({ strength: 2.5 }), 'REFINE_BAD_STRENGTH');
  assert.equal(await code({ chunk: 6, overlap: 6 }), 'REFINE_OVERLAP_TOO_LARGE');
  assert.equal(await code({ chunk: 0 }), 'REFINE_BAD_CHUNK');
  assert.equal(await code({ blend: 'blur' as never }), 'PIPELINE_BAD_INPUT');
  assert.equal(await code({ width: 15 }), 'GENERATE_BAD_SIZE');
  assert.equal(pulled, 0, 'no frame was pulled');
  assert.equal(await code({}, []), 'REFINE_EMPTY_VIDEO');
  assert.equal(await code({}, [new Uint8Array(10)]), 'PIPELINE_BAD_INPUT');
  // T' = 1 is the last step of the schedule: one step, allowed.
  assert.deepEqual(sdeditTimesteps(pipe.components.scheduler, 4, 1), [1]);
  assert.deepEqual(sdeditTimesteps(pipe.components.scheduler, 4, 600), [501, 251, 1]);
});

test('every input frame comes out once, in order, at 24/8 for 24, 40, 45 and 10 frames; input pulled lazily', async () => {
  const pipe = await tinyPipeline();
  for (const n of [24, 40, 45, 10]) {
    let pulled = 0;
    let pulledAtFirstChunk = -1;
    const frames = video(n);
    async function* lazy() {
      for (const f of frames) {
        pulled++;
        yield f;
      }
    }
    const ev: RefineEvent[] = [];
    // Two DDIM steps (501, 1), both below T' = 600.
    for await (const e of refineVideo(pipe, lazy(), { ...BASE, numInferenceSteps: 2, numFrames: n })) {
      if (e.kind === 'chunk-done' && pulledAtFirstChunk < 0) pulledAtFirstChunk = pulled;
      if (e.kind !== 'step') ev.push(e);
    }
    const done = outputOf(ev);
    assert.equal(done.length, n, `${n} frames in, ${n} out`);
    const chunks = refineChunkCount(n, 24, 8);
    assert.deepEqual(
      ev
        .filter((e) => e.kind === 'chunk-start')
        .map((e) => (e.kind === 'chunk-start' ? [e.firstFrame, e.length] : [])),
      Array.from({ length: chunks }, (_, k) => [16 * k, Math.min(24, n - 16 * k)]),
    );
    let next = 0;
    for (const e of ev)
      if (e.kind === 'chunk-done') {
        assert.equal(e.firstFrame, next, 'chunks write contiguous frames');
        assert.equal(e.chunks, chunks);
        next += e.frames.length;
      }
    assert.ok(pulledAtFirstChunk <= 25, `first chunk written after ${pulledAtFirstChunk} frames were pulled`);
    assert.deepEqual(ev.at(-1), { kind: 'done', frames: n, chunks, width: W, height: H });
  }
  // A consumer that stops after the first chunk ends the input too (an upstream generator's finally runs).
  let closed = false;
  async function* upstream() {
    try {
      yield* video(40);
    } finally {
      closed = true;
    }
  }
  for await (const e of refineVideo(pipe, upstream(), { ...BASE, numInferenceSteps: 2 }))
    if (e.kind === 'chunk-done') break;
  assert.ok(closed, 'the input was closed');
});

test('the same seed gives the same refined video, another seed another', async () => {
  const pipe = await tinyPipeline();
  const run = async (seed: number) => outputOf(await collect(pipe, video(9), { ...SMALL, seed }));
  const [a, b, c] = [await run(3), await run(3), await run(4)];
  assert.equal(a.length, 9);
  assert.ok(a.every((f, i) => Buffer.from(f).equals(Buffer.from(b[i]!))));
  assert.ok(a.some((f, i) => !Buffer.from(f).equals(Buffer.from(c[i]!))));
});
