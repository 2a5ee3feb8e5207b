import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  clipPreprocess,
  clipResizeSize,
  clipScore,
  ClipVideoScorer,
  cosineSimilarity,
  frameConsistency,
  OPENAI_CLIP_MEAN,
  OPENAI_CLIP_STD,
  type ClipEmbedder,
} from '../../src/metrics/clip_metrics.js';
import type { RgbVideo } from '../../src/metrics/image_ops.js';
import { lcgImage, solidFrame } from './synthetic.js';

test('CLIP preprocessing matches CLIPImageProcessor (Pillow bicubic, crop, rescale, normalise) bit for bit', () => {
  // Reference: Pillow 9.4 + numpy following transformers' resize/center_crop/rescale/normalize code paths;
  // md5 of the float32 [3, 224, 224] array.
  const cases: [number, number, number, string, number[]][] = [
    [
      300,
      200,
      7,
      'ebe223aa1b39f28a4f8af75a4794db53',
      [-0.4638057053089142, 0.07633614540100098, -0.9455538392066956],
    ],
    [
      96,
      160,
      8,
      '6e92271879d706cc42f262dc7955db33',
      [-0.6097899675369263, -0.5805931091308594, -0.4638057053089142],
    ],
    [
      224,
      224,
      9,
      'e5727ce6f0abedd98c7fc10587574fe3',
      [1.8281471729278564, 0.5288873314857483, 0.266115665435791],
    ],
  ];
  for (const [w, h, seed, hash, first] of cases) {
    const x = clipPreprocess(lcgImage(w, h, seed), w, h);
    assert.equal(x.length, 3 * 224 * 224);
    assert.deepEqual([...x.subarray(0, 3)], first);
    assert.equal(createHash('md5').update(new Uint8Array(x.buffer)).digest('hex'), hash, `${w}x${h}`);
  }
  assert.deepEqual(clipResizeSize(300, 200, 224), { width: 336, height: 224 });
  assert.deepEqual(clipResizeSize(96, 161, 224), { width: 224, height: 375 }); // int(224 * 161 / 96) = 375
});

test('CLIP preprocessing of a solid colour is (c/255 − mean)/std everywhere; options are honoured', () => {
  const x = clipPreprocess(solidFrame(50, 40, [255, 0, 128]), 50, 40, { cropSize: 32, shortestEdge: 32 });
  assert.equal(x.length, 3 * 32 * 32);
  const want = [255, 0, 128].map((c, i) => (c / 255 - OPENAI_CLIP_MEAN[i]!) / OPENAI_CLIP_STD[i]!);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < 1024; i++) assert.ok(Math.abs(x[c * 1024 + i]! - want[c]!) < 1e-6);
  }
  const y = clipPreprocess(solidFrame(8, 8, [51, 51, 51]), 8, 8, {
    shortestEdge: 8,
    cropSize: 8,
    mean: [0, 0, 0],
    std: [1, 1, 1],
  });
  assert.ok(y.every((v) => Math.abs(v - 0.2) < 1e-7));
  assert.throws(() => clipPreprocess(new Uint8Array(10), 4, 4), /expected 48 bytes/);
});

/**
 * Fake CLIP whose answers are computable by hand: an image embeds to its per-channel mean of normalised pixels;
 * the text embeds to a fixed vector chosen by the prompt.
 */
class FakeClip implements ClipEmbedder {
  calls: number[] = [];
  constructor(private readonly text: Record<string, number[]>) {}
  async embedImages(pixels: Float32Array, count: number): Promise<Float32Array[]> {
    this.calls.push(count);
    const per = pixels.length / count;
    const plane = per / 3;
    return Array.from({ length: count }, (_, k) => {
      const e = new Float32Array(3);
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let i = 0; i < plane; i++) s += pixels[k * per + c * plane + i]!;
        e[c] = s / plane;
      }
      return e;
    });
  }
  async embedText(text: string): Promise<Float32Array> {
    return Float32Array.from(this.text[text]!);
  }
}

/** What FakeClip returns for a solid colour: the normalised colour itself. */
function embeddingOf(rgb: [number, number, number]): number[] {
  return rgb.map((c, i) => (c / 255 - OPENAI_CLIP_MEAN[i]!) / OPENAI_CLIP_STD[i]!);
}

test('clipScore = mean of max(100·cos, 0); frameConsistency = mean cos of consecutive frames', async () => {
  const colours: [number, number, number][] = [
    [255, 255, 255],
    [0, 0, 0],
    [255, 0, 0],
    [250, 250, 250],
    [0, 128, 255],
  ];
  const video: RgbVideo = { frames: colours.map((c) => solidFrame(30, 20, c)), width: 30, height: 20 };
  const text = [1, 2, -1];
  const clip = new FakeClip({ 'a prompt': text });
  const e = colours.map(embeddingOf);
  const expectedScore =
    e.map((v) => Math.max(100 * cosineSimilarity(v, text), 0)).reduce((a, b) => a + b) / 5;
  const expectedConsistency =
    [0, 1, 2, 3].map((i) => cosineSimilarity(e[i]!, e[i + 1]!)).reduce((a, b) => a + b) / 4;
  const score = await clipScore(video, 'a prompt', clip, { batchSize: 2 });
  assert.ok(Math.abs(score - expectedScore) < 1e-4, `${score} vs ${expectedScore}`);
  assert.deepEqual(clip.calls, [2, 2, 1]);
  // Black has a negative cosine with this text direction: it contributes 0, not a negative score.
  assert.ok(cosineSimilarity(e[1]!, text) < 0);
  const cons = await frameConsistency(video, clip);
  assert.ok(Math.abs(cons - expectedConsistency) < 1e-6, `${cons} vs ${expectedConsistency}`);
  // Identical frames are perfectly consistent.
  const still: RgbVideo = {
    frames: [video.frames[2]!, video.frames[2]!, video.frames[2]!],
    width: 30,
    height: 20,
  };
  assert.ok(Math.abs((await frameConsistency(still, clip)) - 1) < 1e-6);
});

test('ClipVideoScorer without a prompt computes only frame consistency; errors are clear', async () => {
  const clip = new FakeClip({});
  const s = new ClipVideoScorer(clip, 4, 4);
  await s.push(solidFrame(4, 4, [255, 0, 0]));
  const r = await s.finish();
  assert.deepEqual(r, { clipScore: null, frameConsistency: null, perFrameClipScore: [], frames: 1 });
  await assert.rejects(new ClipVideoScorer(clip, 4, 4).finish(), /no frames/);
  await assert.rejects(
    frameConsistency({ frames: [solidFrame(4, 4, [1, 2, 3])], width: 4, height: 4 }, clip),
    /at least 2 frames/,
  );
  assert.throws(() => cosineSimilarity([0, 0], [1, 1]), /zero-length/);
});

test("a scorer preprocesses at the embedder's own image size (a 64-px CLIP gets 64² crops, not 224²)", async () => {
  const sizes: number[] = [];
  const small: ClipEmbedder = {
    preprocess: { shortestEdge: 64, cropSize: 64 },
    async embedImages(pixels: Float32Array, count: number) {
      sizes.push(pixels.length / count);
      return Array.from({ length: count }, () => Float32Array.from([1, 0, 0]));
    },
    async embedText() {
      return Float32Array.from([1, 0, 0]);
    },
  };
  const video: RgbVideo = { frames: [0, 1].map(() => solidFrame(48, 32, [9, 9, 9])), width: 48, height: 32 };
  assert.ok(Math.abs((await frameConsistency(video, small)) - 1) < 1e-6);
  assert.deepEqual(sizes, [3 * 64 * 64]);
  // An explicit option still wins over the embedder's.
  await frameConsistency(video, small, { preprocess: { shortestEdge: 32, cropSize: 32 } });
  assert.deepEqual(sizes, [3 * 64 * 64, 3 * 32 * 32]);
});
