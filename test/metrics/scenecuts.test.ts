import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { readAllFrames } from '../../src/io/video/index.js';
import { resizeLinear } from '../../src/metrics/color.js';
import { autoDownscaleFactor, detectSceneCuts, sceneCutsOfVideo } from '../../src/metrics/scenecuts.js';

const scenes = resolve(process.cwd(), '../shared/fixtures/scenes');

/** A textured frame: pattern `seed` shifted right by `shift` pixels, brightness scaled by `gain`. */
function texture(w: number, h: number, seed: number, shift = 0, gain = 1): Uint8Array {
  const f = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const u = x - shift;
      const o = (y * w + x) * 3;
      f[o] = Math.round(gain * (128 + 90 * Math.sin(u / (5 + seed) + y / 7)));
      f[o + 1] = Math.round(gain * (128 + 90 * Math.cos(u / 9 - (y * seed) / 11)));
      f[o + 2] = Math.round(gain * (100 + 60 * Math.sin((u + y) / (4 + seed))));
    }
  }
  return f;
}

test('a hard cut at frame k is found at k and nowhere else', async () => {
  for (const k of [13, 30, 57]) {
    const frames = Array.from({ length: 60 }, (_, i) => texture(64, 48, i < k ? 1 : 3));
    const r = await detectSceneCuts(frames, 64, 48);
    assert.deepEqual(r.cuts, [k]);
    assert.equal(r.adaptiveRatios[k], 255);
    assert.ok(Number.isNaN(r.adaptiveRatios[0]!) && Number.isNaN(r.adaptiveRatios[59]!));
  }
});

test('a static video, a slow fade and a pan give no cut; a static video scores 0', async () => {
  const still = await detectSceneCuts(
    Array.from({ length: 40 }, () => texture(64, 48, 2)),
    64,
    48,
  );
  assert.deepEqual(still.cuts, []);
  assert.ok(still.contentValues.every((v) => v === 0));
  assert.deepEqual(
    still.adaptiveRatios.filter((v) => !Number.isNaN(v)),
    Array(36).fill(0),
  );
  const fade = await detectSceneCuts(
    Array.from({ length: 60 }, (_, i) => texture(64, 48, 2, 0, 1 - i / 70)),
    64,
    48,
  );
  assert.deepEqual(fade.cuts, []);
  const pan = await detectSceneCuts(
    Array.from({ length: 60 }, (_, i) => texture(64, 48, 2, 3 * i)),
    64,
    48,
  );
  assert.deepEqual(pan.cuts, []);
  assert.ok(pan.contentValues[30]! > 1, 'the pan does change the content');
});

test('min scene length: a second cut 12 frames later is dropped, one 13 frames later is kept', async () => {
  const seq = (second: number) =>
    Array.from({ length: 80 }, (_, i) => texture(64, 48, i < 20 ? 1 : i < second ? 3 : 5));
  assert.deepEqual((await detectSceneCuts(seq(32), 64, 48)).cuts, [20]);
  assert.deepEqual((await detectSceneCuts(seq(33), 64, 48)).cuts, [20, 33]);
});

test('auto downscale follows the SceneManager rule; options are checked', async () => {
  assert.equal(autoDownscaleFactor(255, 100), 1);
  assert.equal(autoDownscaleFactor(640, 360), 2.5);
  assert.equal(autoDownscaleFactor(200, 480), 1.875);
  await assert.rejects(detectSceneCuts([], 8, 8, { windowWidth: 0 }), { code: 'METRIC_BAD_INPUT' });
  await assert.rejects(
    detectSceneCuts([], 8, 8, { weights: { deltaHue: 1, deltaSat: 1, deltaLum: 1, deltaEdges: 1 } }),
    /deltaEdges/,
  );
  await assert.rejects(detectSceneCuts([new Uint8Array(5)], 8, 8), /bytes/);
});

interface Fixture {
  cuts: number[];
  num_frames: number;
  downscale: number;
  processed_width: number;
  processed_height: number;
  processed_bgr_md5: string[];
  stats: Record<string, Record<string, number>>;
}

test('cv2.resize INTER_LINEAR port matches processed_bgr_md5 (downscale 2.5 and 1.40625)', async () => {
  for (const name of ['texture_cuts_640x360_23.976fps', 'zoom_in_360x200_24fps']) {
    const fx = JSON.parse(readFileSync(`${scenes}/${name}.json`, 'utf8')) as Fixture;
    const { info, frames } = await readAllFrames(`${scenes}/${name}.mp4`);
    for (let i = 0; i < frames.length; i += 7) {
      const small = resizeLinear(
        frames[i]!,
        info.width,
        info.height,
        3,
        fx.processed_width,
        fx.processed_height,
      );
      const bgr = new Uint8Array(small.length);
      for (let p = 0; p < small.length; p += 3) bgr.set([small[p + 2]!, small[p + 1]!, small[p]!], p);
      assert.equal(
        createHash('md5').update(bgr).digest('hex'),
        fx.processed_bgr_md5[i],
        `${name} frame ${i}`,
      );
    }
  }
});

// Decoding and resizing are bit-exact with the reference (see the md5 tests), so the statistics are expected
// to be identical; a 1e-9 tolerance is allowed on the doubles (measured difference: 0).
const STAT_TOLERANCE = 1e-9;

for (const file of readdirSync(scenes).filter((n) => n.endsWith('.mp4'))) {
  test(`parity with PySceneDetect on ${file}`, async () => {
    const fx = JSON.parse(readFileSync(`${scenes}/${file.replace(/\.mp4$/, '.json')}`, 'utf8')) as Fixture;
    const r = await sceneCutsOfVideo(`${scenes}/${file}`);
    assert.deepEqual(r.cuts, fx.cuts);
    assert.equal(r.contentValues.length, fx.num_frames);
    assert.equal(r.downscale, fx.downscale);
    assert.deepEqual([r.processedWidth, r.processedHeight], [fx.processed_width, fx.processed_height]);
    for (let i = 0; i < fx.num_frames; i++) {
      const s = fx.stats[String(i)]!;
      const ratio = s['adaptive_ratio'];
      if (ratio === undefined) assert.ok(Number.isNaN(r.adaptiveRatios[i]!), `frame ${i} has no ratio`);
      else assert.ok(Math.abs(ratio - r.adaptiveRatios[i]!) <= STAT_TOLERANCE, `frame ${i} ratio`);
      if (s['content_val'] === undefined) continue;
      const got = [
        r.contentValues[i],
        r.components.deltaHue[i],
        r.components.deltaSat[i],
        r.components.deltaLum[i],
      ];
      const want = [s['content_val'], s['delta_hue'], s['delta_sat'], s['delta_lum']];
      for (let k = 0; k < 4; k++)
        assert.ok(Math.abs(got[k]! - want[k]!) <= STAT_TOLERANCE, `frame ${i} stat ${k}`);
    }
  });
}
