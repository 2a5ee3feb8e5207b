import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  VideoError,
  createVideoWriter,
  formatFromPath,
  openVideo,
  readAllFrames,
  writeVideo,
} from '../../../src/io/video/index.js';
import type { VideoErrorCode } from '../../../src/io/video/index.js';
import { syntheticFrames } from './synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'kinema-video-err-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const frames = syntheticFrames(32, 32, 6);
const opts = { width: 32, height: 32, fps: 10 };

async function rejectsWith(p: Promise<unknown>, code: VideoErrorCode): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VideoError, `expected VideoError, got ${String(err)}`);
    assert.equal(err.reason, code, err.message);
    assert.equal(err.code, `VIDEO_${code}`, err.message);
    return true;
  });
}

/** Opens and decodes every frame (errors may surface at open or while decoding). */
const readFully = (p: string) => readAllFrames(p);

function leftovers(): string[] {
  return readdirSync(dir).filter((n) => n.includes('.partial'));
}

test('NOT_FOUND, UNREADABLE, EMPTY', async () => {
  await rejectsWith(readFully(join(dir, 'missing.mp4')), 'NOT_FOUND');
  await rejectsWith(readFully(join(dir, 'no', 'such', 'folder')), 'NOT_FOUND');
  mkdirSync(join(dir, 'empty_folder'));
  await rejectsWith(readFully(join(dir, 'empty_folder')), 'UNREADABLE');
  writeFileSync(join(dir, 'zero.mp4'), new Uint8Array(0));
  await rejectsWith(readFully(join(dir, 'zero.mp4')), 'EMPTY');
});

for (const ext of ['mp4', 'webm', 'gif', 'webp'] as const) {
  test(`${ext}: TRUNCATED when cut short, CORRUPT when bytes are garbage`, async () => {
    const good = join(dir, `good.${ext}`);
    await writeVideo(good, frames, opts);
    const bytes = readFileSync(good);
    const cut = join(dir, `cut.${ext}`);
    writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.6)));
    await rejectsWith(readFully(cut), 'TRUNCATED');
    const noise = Uint8Array.from({ length: 4000 }, (_, i) => (i * 7919 + 13) % 251);
    const garbage = join(dir, `garbage.${ext}`);
    writeFileSync(garbage, noise);
    await rejectsWith(readFully(garbage), 'CORRUPT');
    // A valid start followed by garbage.
    const damaged = Uint8Array.from(bytes);
    damaged.set(noise.subarray(0, damaged.length - 40), 40);
    const bad = join(dir, `damaged.${ext}`);
    writeFileSync(bad, damaged);
    await rejectsWith(readFully(bad), 'CORRUPT');
  });
}

test('UNSUPPORTED: unknown container or extension', async () => {
  const p = join(dir, 'data.bin');
  writeFileSync(
    p,
    Uint8Array.from({ length: 100 }, (_, i) => i),
  );
  await rejectsWith(readFully(p), 'UNSUPPORTED');
  assert.throws(
    () => formatFromPath('clip.avi'),
    (e: unknown) => e instanceof VideoError && e.code === 'VIDEO_UNSUPPORTED',
  );
  assert.equal(formatFromPath('out/frames'), 'png');
  assert.equal(formatFromPath('a.MP4'), 'mp4');
  await rejectsWith(createVideoWriter(join(dir, 'x.avi'), opts), 'UNSUPPORTED');
});

test('BAD_FRAME: wrong frame size rejects the write and removes the temp output', async () => {
  const w = await createVideoWriter(join(dir, 'bad.mp4'), opts);
  await w.write(frames[0]!);
  await rejectsWith(w.write(new Uint8Array(10)), 'BAD_FRAME');
  assert.deepEqual(leftovers(), []);
  assert.ok(!readdirSync(dir).includes('bad.mp4'));
  await rejectsWith(createVideoWriter(join(dir, 'bad2.mp4'), { ...opts, fps: 0 }), 'BAD_FRAME');
});

test('abort and failures leave nothing behind and never clobber an existing file', async () => {
  for (const ext of ['mp4', 'webm', 'gif', 'webp', '']) {
    const target = join(dir, `keep${ext ? '.' + ext : '_frames'}`);
    await writeVideo(target, frames.slice(0, 3), opts);
    const before = (await readAllFrames(target)).frames.length;
    const w = await createVideoWriter(target, opts);
    await w.write(frames[0]!);
    await w.abort();
    assert.deepEqual(leftovers(), [], ext);
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield frames[1]!;
      throw new Error('source failed');
    }
    await assert.rejects(writeVideo(target, failing(), opts), /source failed/);
    assert.deepEqual(leftovers(), [], ext);
    assert.equal((await readAllFrames(target)).frames.length, before, `${ext}: existing output kept`);
    // A successful write replaces it.
    await writeVideo(target, frames, opts);
    assert.equal((await readAllFrames(target)).frames.length, 6);
  }
  await rejectsWith(createVideoWriter(join(dir, 'nofolder', 'x.mp4'), opts), 'NOT_FOUND');
});

test('a writer with no frames fails on close with EMPTY and leaves nothing', async () => {
  const w = await createVideoWriter(join(dir, 'none.webm'), opts);
  await rejectsWith(w.close(), 'EMPTY');
  assert.deepEqual(leftovers(), []);
  assert.ok(!readdirSync(dir).includes('none.webm'));
  const r = await openVideo(join(dir, 'keep.gif'));
  await r.close();
});

test('headers claiming gigantic frames are refused before any allocation (WebP canvas, GIF screen)', async () => {
  // A VP8X canvas of 7 208 976 × 16 (found by the fuzzer: a 461 MB canvas per frame, seconds of work).
  const webp = join(dir, 'huge.webp');
  await writeVideo(webp, frames, opts);
  const b = readFileSync(webp);
  const vp8x = b.indexOf('VP8X');
  b.writeUIntLE(0x6e000e, vp8x + 12, 3); // canvas width − 1
  writeFileSync(webp, b);
  await rejectsWith(openVideo(webp), 'UNSUPPORTED');
  const gif = join(dir, 'huge.gif');
  await writeVideo(gif, frames, opts);
  const g = readFileSync(gif);
  g.writeUInt16LE(60000, 6); // logical screen 60000 × 60000: a 14 GB canvas
  g.writeUInt16LE(60000, 8);
  writeFileSync(gif, g);
  await rejectsWith(openVideo(gif), 'UNSUPPORTED');
});
