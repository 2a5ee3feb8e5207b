import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  boxSum,
  resizeBilinear,
  resizeRgbBilinear,
  resizeRgbPil,
  rgbToGray,
  roundHalfEven,
} from '../../src/metrics/image_ops.js';
import { lcgImage } from './synthetic.js';

const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');

test('resizeRgbPil is bit-exact with Pillow 9.4 Image.resize(BICUBIC) (down, up, mixed)', () => {
  // md5 of numpy.array(Image.fromarray(img).resize((ow, oh), Image.BICUBIC, reducing_gap=None)).tobytes()
  const cases: [number, number, number, number, number, string, number[]][] = [
    [37, 23, 11, 7, 1, 'a8e8c2e07c74f55007b4b72d73ad1dcd', [124, 122, 148, 123, 112, 135]],
    [37, 23, 80, 50, 2, '38c6c85fb5216717ffe14c0624be1949', [153, 0, 255, 148, 50, 255]],
    [64, 48, 224, 168, 3, '0bbf96e353e1c23735764ea624d2cacd', [69, 216, 113, 74, 212, 117]],
    [300, 200, 336, 224, 4, 'e1dc35816b71e02d1049306154587fae', [16, 103, 255, 115, 45, 161]],
    [40, 40, 13, 29, 5, '64d2af8904366611cd00cbce620f4aaa', [159, 133, 101, 140, 76, 158]],
  ];
  for (const [w, h, ow, oh, seed, hash, first] of cases) {
    const out = resizeRgbPil(lcgImage(w, h, seed), w, h, ow, oh);
    assert.deepEqual([...out.subarray(0, 6)], first, `${w}x${h} -> ${ow}x${oh}`);
    assert.equal(md5(out), hash, `${w}x${h} -> ${ow}x${oh}`);
  }
});

test('bilinear resize uses half-pixel centres and clamps at the border', () => {
  // 2 -> 4: source x = (d + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (right neighbour clamped).
  assert.deepEqual([...resizeBilinear(Float32Array.from([0, 10]), 2, 1, 4, 1)], [0, 2.5, 7.5, 10]);
  // 4 -> 2: source x = 0.5 and 2.5, i.e. the mean of each pair.
  assert.deepEqual([...resizeBilinear(Float32Array.from([0, 10, 20, 40]), 4, 1, 2, 1)], [5, 30]);
  // The uint8 version rounds half to even: 0.25·(1, 3, 5) = (0.25, 0.75, 1.25) -> (0, 1, 1), 0.75·(...) -> (1, 2, 4).
  const rgb = Uint8Array.from([0, 0, 0, 1, 3, 5]);
  assert.deepEqual([...resizeRgbBilinear(rgb, 2, 1, 4, 1)], [0, 0, 0, 0, 1, 1, 1, 2, 4, 1, 3, 5]);
});

test('roundHalfEven matches numpy/torch rounding', () => {
  assert.deepEqual(
    [0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, -2.6].map(roundHalfEven),
    [0, 2, 2, -0, -2, 2, 3, -3],
  );
});

test('boxSum equals a brute-force windowed sum with replicated borders', () => {
  const w = 7;
  const h = 5;
  const ch = 2;
  const src = Float32Array.from({ length: w * h * ch }, (_, i) => ((i * 37) % 11) - 3);
  const r = 2;
  const out = boxSum(src, w, h, ch, r);
  const cl = (v: number, n: number): number => Math.min(n - 1, Math.max(0, v));
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < ch; c++) {
        let s = 0;
        for (let j = -r; j <= r; j++)
          for (let i = -r; i <= r; i++) s += src[(cl(y + j, h) * w + cl(x + i, w)) * ch + c]!;
        assert.ok(Math.abs(out[(y * w + x) * ch + c]! - s) < 1e-4, `(${x}, ${y}, ${c})`);
      }
    }
  }
});

test('rgbToGray uses BT.601 weights', () => {
  const g = rgbToGray(Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 100, 100, 100]), 4, 1);
  assert.ok(
    Math.abs(g[0]! - 76.245) < 1e-4 && Math.abs(g[1]! - 149.685) < 1e-4 && Math.abs(g[2]! - 29.07) < 1e-4,
  );
  assert.ok(Math.abs(g[3]! - 100) < 1e-4);
  assert.throws(() => rgbToGray(new Uint8Array(5), 2, 1), /expected 6 bytes/);
});
