import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FarnebackEstimator,
  opticalFlow,
  opticalFlowRgb,
  type FlowField,
} from '../../src/metrics/optical_flow.js';
import { panVideo, texture, translate } from './synthetic.js';

/** RMS of the end-point error against a constant (du, dv) over pixels at least `margin` from the border. */
function rmsError(
  f: FlowField,
  width: number,
  height: number,
  du: number,
  dv: number,
  margin: number,
): number {
  let se = 0;
  let n = 0;
  for (let y = margin; y < height - margin; y++) {
    for (let x = margin; x < width - margin; x++) {
      const i = y * width + x;
      se += (f.u[i]! - du) ** 2 + (f.v[i]! - dv) ** 2;
      n++;
    }
  }
  return Math.sqrt(se / n);
}

test('identical frames give exactly zero flow', () => {
  const w = 80;
  const h = 60;
  const img = texture(w, h, 2);
  const f = opticalFlow(img, img.slice(), w, h);
  assert.equal(f.u.length, w * h);
  assert.ok(f.u.every((x) => x === 0) && f.v.every((x) => x === 0));
  const [a] = panVideo(w, h, [[0, 0]]);
  const g = opticalFlowRgb(a!, a!.slice(), w, h);
  assert.ok(g.u.every((x) => x === 0) && g.v.every((x) => x === 0));
});

test('recovers a sub-pixel translation (1.3, -0.7) within 0.25 px RMS', () => {
  const w = 128;
  const h = 96;
  const img = texture(w, h, 2, 7);
  const moved = translate(img, w, h, 1.3, -0.7);
  const f = opticalFlow(img, moved, w, h);
  const rms = rmsError(f, w, h, 1.3, -0.7, 12);
  assert.ok(rms < 0.25, `RMS end-point error ${rms}`);
  // The method is far better than the requirement on this texture; guard against silent regressions.
  assert.ok(rms < 0.08, `RMS end-point error ${rms}`);
});

test('recovers a larger translation through the pyramid', () => {
  const w = 160;
  const h = 128;
  const img = texture(w, h, 3, 11);
  const f = opticalFlow(img, translate(img, w, h, -9.6, 5.2), w, h);
  const rms = rmsError(f, w, h, -9.6, 5.2, 24);
  assert.ok(rms < 0.25, `RMS end-point error ${rms}`);
});

test('a moving square on a still background: flow on the square, none around it', () => {
  const w = 96;
  const h = 96;
  const bg = texture(w, h, 2, 21);
  const fg = texture(w, h, 1.5, 22);
  const frame = (ox: number): Float32Array => {
    const out = bg.slice();
    for (let y = 30; y < 62; y++) for (let x = 20; x < 52; x++) out[y * w + x + ox] = fg[y * w + x]!;
    return out;
  };
  const f = opticalFlow(frame(0), frame(3), w, h);
  const at = (x: number, y: number): [number, number] => [f.u[y * w + x]!, f.v[y * w + x]!];
  const [uIn, vIn] = at(38, 46);
  assert.ok(Math.abs(uIn - 3) < 0.3 && Math.abs(vIn) < 0.3, `inside the square: (${uIn}, ${vIn})`);
  const [uOut, vOut] = at(80, 85);
  assert.ok(Math.abs(uOut) < 0.1 && Math.abs(vOut) < 0.1, `background: (${uOut}, ${vOut})`);
});

test('the streaming estimator reuses the previous frame and matches the one-shot function', async () => {
  const w = 64;
  const h = 48;
  const frames = panVideo(w, h, [
    [0, 0],
    [1, 0.5],
    [2, 1],
  ]);
  const est = new FarnebackEstimator();
  await est.estimate(frames[0]!, frames[1]!, w, h);
  const streamed = await est.estimate(frames[1]!, frames[2]!, w, h);
  const direct = opticalFlowRgb(frames[1]!, frames[2]!, w, h);
  assert.deepEqual(streamed.u, direct.u);
  assert.deepEqual(streamed.v, direct.v);
  await est.dispose();
});

test('bad input is rejected with a clear error', () => {
  const img = new Float32Array(20);
  assert.throws(() => opticalFlow(img, new Float32Array(19), 5, 4), /next has 19 values, expected 20/);
  assert.throws(() => opticalFlow(img, img, 1, 20), /at least 2x2/);
  assert.throws(() => opticalFlow(img, img, 5, 4, { winSize: 4 }), /winSize must be an odd integer/);
  assert.throws(() => opticalFlowRgb(new Uint8Array(5), new Uint8Array(5), 5, 4), /expected 60 bytes/);
});
