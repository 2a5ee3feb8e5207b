import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { openVideo, readAllFrames, writeVideo } from '../../../src/io/video/index.js';
import type { VideoFormat } from '../../../src/io/video/index.js';
import { psnr, syntheticFrames } from './synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'kinema-video-rt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Minimum per-frame PSNR at the default quality. mp4/webm: the brief's 35 dB (measured 37–39 dB; 4:2:0 chroma is
// the main loss). GIF: a 256-colour palette per frame, dithered, quantizer effort 3 for speed (measured ≈ 37–39 dB here, 32.6 dB at 256×256) → 30 dB. WebP: lossy VP8
// at quality 75, also 4:2:0 (measured ≈ 35–36 dB) → 33 dB. PNG: lossless.
const MIN_PSNR: Record<VideoFormat, number> = { mp4: 35, webm: 35, gif: 30, webp: 33, png: Infinity };
const EXT: Record<VideoFormat, string> = { mp4: '.mp4', webm: '.webm', gif: '.gif', webp: '.webp', png: '' };

for (const format of ['mp4', 'webm', 'gif', 'webp', 'png'] as const) {
  for (const [width, height, fps] of [
    [64, 64, 24],
    [96, 64, 8],
  ] as const) {
    test(`${format} ${width}x${height} @${fps} fps round trip`, async () => {
      const frames = syntheticFrames(width, height, 20);
      const path = join(dir, `rt_${width}x${height}${EXT[format]}`);
      await writeVideo(path, frames, { width, height, fps });
      const { info, frames: back } = await readAllFrames(path);
      assert.deepEqual(
        { width: info.width, height: info.height, format: info.format },
        { width, height, format },
      );
      assert.ok(Math.abs(info.fps - fps) < 1e-9, `fps ${info.fps} != ${fps}`);
      assert.ok(info.frameCount === null || info.frameCount === 20);
      assert.equal(back.length, 20);
      for (let i = 0; i < 20; i++) {
        const p = psnr(frames[i]!, back[i]!, width, height);
        assert.ok(
          p >= MIN_PSNR[format],
          `${format} frame ${i}: PSNR ${p.toFixed(2)} dB < ${MIN_PSNR[format]}`,
        );
      }
    });
  }
}

test('odd size 97x63: gif/webp/png keep it, mp4/webm pad to 98x64 with the picture intact', async () => {
  const [width, height] = [97, 63];
  const frames = syntheticFrames(width, height, 16);
  for (const format of ['mp4', 'webm', 'gif', 'webp', 'png'] as const) {
    const path = join(dir, `odd${EXT[format]}`);
    await writeVideo(path, frames, { width, height, fps: 30, format });
    const { info, frames: back } = await readAllFrames(path);
    const padded = format === 'mp4' || format === 'webm';
    assert.deepEqual([info.width, info.height], padded ? [98, 64] : [97, 63], format);
    assert.equal(back.length, 16);
    for (let i = 0; i < 16; i++) {
      const p = psnr(frames[i]!, back[i]!, width, height, info.width);
      assert.ok(p >= Math.min(MIN_PSNR[format], 33), `${format} frame ${i}: PSNR ${p.toFixed(2)}`);
    }
  }
});

test('fps is kept for NTSC and fractional rates; quality changes the MP4 size', async () => {
  const frames = syntheticFrames(64, 64, 12);
  for (const [format, fps] of [
    ['gif', 24000 / 1001],
    ['webp', 30000 / 1001],
    ['png', 12.5],
    ['webm', 25],
  ] as const) {
    const path = join(dir, `fps_${format}${EXT[format]}`);
    await writeVideo(path, frames, { width: 64, height: 64, fps, format });
    const r = await openVideo(path);
    assert.ok(Math.abs(r.info.fps - fps) < 1e-6, `${format}: ${r.info.fps} != ${fps}`);
    await r.close();
  }
  const { statSync } = await import('node:fs');
  await writeVideo(join(dir, 'q20.mp4'), frames, { width: 64, height: 64, fps: 8, quality: 20 });
  await writeVideo(join(dir, 'q95.mp4'), frames, { width: 64, height: 64, fps: 8, quality: 95 });
  assert.ok(statSync(join(dir, 'q20.mp4')).size * 2 < statSync(join(dir, 'q95.mp4')).size);
  const low = await readAllFrames(join(dir, 'q20.mp4'));
  const high = await readAllFrames(join(dir, 'q95.mp4'));
  assert.ok(psnr(frames[5]!, low.frames[5]!, 64, 64) < psnr(frames[5]!, high.frames[5]!, 64, 64));
});

test('reading streams: frames arrive one by one and no temp files remain after writes', async () => {
  const r = await openVideo(join(dir, 'rt_64x64.mp4'));
  let n = 0;
  for await (const f of r.frames()) {
    assert.equal(f.length, 64 * 64 * 3);
    n++;
  }
  await r.close();
  assert.equal(n, 20);
  assert.deepEqual(
    readdirSync(dir).filter((name) => name.includes('.partial')),
    [],
  );
});

test('the last frame gets its duration: 16 frames at 8 fps last 2.0 s in MP4 and WebM', async () => {
  const { Input, ALL_FORMATS, FilePathSource } = await import('mediabunny');
  const d = mkdtempSync(join(tmpdir(), 'kinema-dur-'));
  try {
    for (const ext of ['mp4', 'webm']) {
      const path = join(d, `clip.${ext}`);
      await writeVideo(path, syntheticFrames(32, 32, 16), { width: 32, height: 32, fps: 8 });
      const input = new Input({ source: new FilePathSource(path), formats: ALL_FORMATS });
      assert.equal(await input.computeDuration(), 2, ext);
      input.dispose();
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
