import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  analyzeMotion,
  forwardWarp,
  mawe,
  MAWE_COEFF,
  meanFlowMagnitude,
  warpError,
} from '../../src/metrics/mawe.js';
import type { FlowEstimator, FlowField } from '../../src/metrics/optical_flow.js';
import { panVideo, rng } from './synthetic.js';

function uniformFlow(n: number, u: number, v: number): FlowField {
  return { u: new Float32Array(n).fill(u), v: new Float32Array(n).fill(v) };
}

/** Gray RGB24 image from per-pixel values. */
function grayRgb(values: number[]): Uint8Array {
  return Uint8Array.from(values.flatMap((v) => [v, v, v]));
}

test('forward warp moves pixels to round(p + flow) and marks unreached targets unknown', () => {
  // 4x1 image [10, 20, 30, 40]; flow +1 px: targets 1, 2, 3 get 10, 20, 30; 40 leaves the frame; 0 is unknown.
  const img = grayRgb([10, 20, 30, 40]);
  const w = forwardWarp(img, uniformFlow(4, 1, 0), 4, 1);
  assert.deepEqual([...w.known], [0, 1, 1, 1]);
  assert.equal(w.knownCount, 3);
  assert.deepEqual(
    [...w.warped].filter((_, i) => i % 3 === 0),
    [0, 10, 20, 30],
  );
});

test('forward warp rounds half to even and the last source (row-major) wins collisions', () => {
  const img = grayRgb([10, 20, 30, 40]);
  // x + 0.5: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4 (out). Target 2 is hit by sources 1 and 2: source 2 wins.
  const w = forwardWarp(img, uniformFlow(4, 0.5, 0), 4, 1);
  assert.deepEqual([...w.known], [1, 0, 1, 0]);
  assert.deepEqual(
    [...w.warped].filter((_, i) => i % 3 === 0),
    [10, 0, 30, 0],
  );
});

test('warp error is the MSE over known pixels and channels, on the [0, 255] scale', () => {
  const prev = Uint8Array.from([10, 10, 10, 20, 20, 20, 30, 30, 30, 40, 40, 40]);
  const next = Uint8Array.from([99, 99, 99, 13, 10, 10, 20, 24, 20, 30, 30, 30]);
  // Known targets 1..3 receive 10, 20, 30: squared errors (9 + 0 + 0) + (0 + 16 + 0) + 0 over 9 values.
  assert.equal(warpError(prev, next, uniformFlow(4, 1, 0), 4, 1), 25 / 9);
  // Nothing known (flow pushes everything out): the sum is 0 and the denominator is 3·H·W.
  assert.equal(warpError(prev, next, uniformFlow(4, 9, 0), 4, 1), 0);
});

/** Estimator that returns a fixed flow, to check the MAWE arithmetic independently of flow accuracy. */
class FixedFlow implements FlowEstimator {
  readonly name = 'fixed';
  constructor(
    private readonly u: number,
    private readonly v: number,
  ) {}
  async estimate(_p: Uint8Array, _n: Uint8Array, width: number, height: number): Promise<FlowField> {
    return uniformFlow(width * height, this.u, this.v);
  }
  async dispose(): Promise<void> {}
}

test('MAWE = mean over pairs of warp error / (9.5 · mean flow magnitude)', async () => {
  // Frames are horizontal ramps 10x + 50 + offset_t, shifted by 2 px per frame; the estimator claims (1, 0).
  // Every known target q then differs by exactly 10 from its source: warp error 100, motion 1 ->
  // ratio 100 / 9.5 for each pair.
  const w = 8;
  const h = 3;
  const frame = (t: number): Uint8Array =>
    grayRgb(Array.from({ length: w * h }, (_, i) => 10 * ((i % w) - 2 * t) + 100));
  const r = await mawe([frame(0), frame(1), frame(2)], w, h, { estimator: new FixedFlow(1, 0), size: null });
  assert.deepEqual(r.warpErrors, [100, 100]);
  assert.deepEqual(r.motions, [1, 1]);
  assert.ok(Math.abs(r.mawe! - 100 / MAWE_COEFF) < 1e-12);
  const r2 = await mawe([frame(0), frame(1)], w, h, { estimator: new FixedFlow(3, 4), size: null, coeff: 2 });
  assert.equal(r2.motions[0], 5);
  assert.equal(r2.mawe, r2.warpErrors[0]! / (2 * 5));
});

test('MAWE is lower for a smooth pan than for the same frames shuffled', async () => {
  // 2.5 px per frame: consecutive frames are easy to match; shuffled, the jumps reach 17 px back and forth.
  const offsets: [number, number][] = Array.from({ length: 8 }, (_, t) => [2.5 * t, -1 * t]);
  const frames = panVideo(64, 48, offsets, 5);
  const order = [0, 5, 2, 7, 1, 6, 3, 4];
  const smooth = await mawe(frames, 64, 48, { size: null });
  const shuffled = await mawe(
    order.map((i) => frames[i]!),
    64,
    48,
    { size: null },
  );
  assert.ok(smooth.mawe! > 0);
  assert.ok(smooth.mawe! * 5 < shuffled.mawe!, `smooth ${smooth.mawe}, shuffled ${shuffled.mawe}`);
});

test('by default frames are resized to 720x720 as in the reference script', async () => {
  const frames = panVideo(40, 30, [
    [0, 0],
    [1, 0],
  ]);
  const r = await analyzeMotion(frames, 40, 30);
  assert.equal(r.flowWidth, 720);
  assert.equal(r.flowHeight, 720);
  // 1 px at 40 px wide is 18 px at 720 wide (and 0 vertically).
  assert.ok(Math.abs(r.meanFlowMagnitude - 18) < 1, `mean magnitude ${r.meanFlowMagnitude}`);
});

test('a static video has undefined MAWE (every pair is 0/0)', async () => {
  const [f] = panVideo(32, 32, [[0, 0]]);
  const r = await analyzeMotion([f!, f!, f!], 32, 32, { size: null });
  assert.equal(r.mawe, null);
  assert.equal(r.undefinedPairs, 2);
  assert.deepEqual(r.motions, [0, 0]);
  assert.equal(r.meanFlowMagnitude, 0);
});

test('meanFlowMagnitude averages Euclidean norms', () => {
  const f = { u: Float32Array.from([3, 0, 1]), v: Float32Array.from([4, 0, 0]) };
  assert.equal(meanFlowMagnitude(f), 2);
});

test('motion metrics reject videos with fewer than 2 frames', async () => {
  const r = rng(1);
  const f = Uint8Array.from({ length: 48 }, () => Math.floor(r() * 256));
  await assert.rejects(mawe([f], 4, 4), /at least 2 frames, got 1/);
  await assert.rejects(mawe([f, new Uint8Array(3)], 4, 4, { size: null }), /frame has 3 bytes, expected 48/);
});
