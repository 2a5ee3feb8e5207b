import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { openVideo } from '../../../src/io/video/index.js';
import { rgbToI420, yuv420ToRgb } from '../../../src/io/video/yuv.js';

const scenes = resolve(process.cwd(), '../shared/fixtures/scenes');

test('decoded H.264 frames equal FFmpeg 5.1 swscale bgr24 output byte for byte (decoded_bgr_md5)', async () => {
  for (const name of ['edge_cuts_96x64_30fps', 'hue_wrap_128x72_25fps']) {
    const fixture = JSON.parse(readFileSync(`${scenes}/${name}.json`, 'utf8')) as {
      decoded_bgr_md5: string[];
    };
    const reader = await openVideo(`${scenes}/${name}.mp4`);
    let i = 0;
    for await (const rgb of reader.frames()) {
      const bgr = new Uint8Array(rgb.length);
      for (let p = 0; p < rgb.length; p += 3) bgr.set([rgb[p + 2]!, rgb[p + 1]!, rgb[p]!], p);
      assert.equal(
        createHash('md5').update(bgr).digest('hex'),
        fixture.decoded_bgr_md5[i],
        `${name} frame ${i}`,
      );
      i++;
    }
    await reader.close();
    assert.equal(i, fixture.decoded_bgr_md5.length);
  }
});

test('BT.601 limited-range values: black, white, grey and primaries decode to their RGB', () => {
  // Y/U/V of limited-range BT.601 colours (ITU-R BT.601 table); swscale's 13-bit truncating fixed point may be
  // up to 2 below the ideal value (red decodes to 253).
  const cases: [number, number, number, number[]][] = [
    [16, 128, 128, [0, 0, 0]],
    [235, 128, 128, [255, 255, 255]],
    [126, 128, 128, [128, 128, 128]],
    [81, 90, 240, [255, 0, 0]],
  ];
  for (const [y, u, v, rgb] of cases) {
    const plane = (val: number) => ({ data: Uint8Array.of(val, val, val, val), offset: 0, stride: 2 });
    const out = yuv420ToRgb({
      width: 2,
      height: 2,
      y: plane(y),
      u: plane(u),
      v: plane(v),
      matrix: 'bt601',
      fullRange: false,
    });
    for (let c = 0; c < 3; c++)
      assert.ok(Math.abs(out[c]! - rgb[c]!) <= 2, `YUV ${y},${u},${v} → ${out.slice(0, 3)}`);
  }
});

// 8-bit limited range (219 luma levels) plus swscale's truncating fixed point: up to 4 levels off on smooth colour.
test('RGB → I420 → RGB keeps smooth colour within 4 levels', () => {
  const w = 16;
  const rgb = new Uint8Array(w * w * 3);
  for (let i = 0; i < w * w; i++) rgb.set([60 + (i % w) * 4, 80 + Math.floor(i / w) * 3, 120], i * 3);
  const yuv = rgbToI420(rgb, w, w);
  const back = yuv420ToRgb({
    width: w,
    height: w,
    y: { data: yuv, offset: 0, stride: w },
    u: { data: yuv, offset: w * w, stride: w / 2 },
    v: { data: yuv, offset: (w * w * 5) / 4, stride: w / 2 },
    matrix: 'bt601',
    fullRange: false,
  });
  let worst = 0;
  for (let i = 0; i < rgb.length; i++) worst = Math.max(worst, Math.abs(rgb[i]! - back[i]!));
  assert.ok(worst <= 4, `worst error ${worst}`);
});
