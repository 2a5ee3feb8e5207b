// Animated WebP, streaming both ways, with our own RIFF layer around sharp's still-image WebP codec. Writing:
// each frame is encoded by sharp (lossy VP8, or lossless VP8L at quality 100) and its bitstream chunk is wrapped
// in an ANMF frame; the RIFF size is patched on finish. Frame durations are whole milliseconds chosen so the
// running time tracks i/fps. Reading: ANMF frames are re-wrapped as still WebPs, decoded by sharp and
// composited (blend/dispose flags honoured) on an RGBA canvas; transparent areas read as black.

import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import sharp from 'sharp';
import { VideoError, checkFrameSize } from './errors.js';
import type { FrameSink, VideoInfo, VideoReader } from './types.js';

const enc = new TextEncoder();

function u24le(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff];
}

function u32le(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff];
}

function chunk(fourcc: string, payload: Uint8Array | number[]): Uint8Array {
  const data = payload instanceof Uint8Array ? payload : Uint8Array.from(payload);
  const out = new Uint8Array(8 + data.length + (data.length & 1));
  out.set(enc.encode(fourcc));
  out.set(u32le(data.length), 4);
  out.set(data, 8);
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Splits a RIFF/WEBP buffer into its chunks (fourcc and the whole chunk bytes, header and padding included). */
function chunksOf(webp: Uint8Array): { fourcc: string; bytes: Uint8Array }[] {
  const out: { fourcc: string; bytes: Uint8Array }[] = [];
  const dv = new DataView(webp.buffer, webp.byteOffset, webp.byteLength);
  for (let p = 12; p + 8 <= webp.length;) {
    const size = dv.getUint32(p + 4, true);
    const end = p + 8 + size + (size & 1);
    out.push({ fourcc: String.fromCharCode(...webp.subarray(p, p + 4)), bytes: webp.subarray(p, end) });
    p = end;
  }
  return out;
}

export async function createWebpSink(
  path: string,
  s: { width: number; height: number; fps: number; quality: number },
): Promise<FrameSink> {
  if (s.width > 16383 || s.height > 16383) {
    throw new VideoError('UNSUPPORTED', path, 'WebP frames are at most 16383x16383');
  }
  const fh = await open(path, 'wx');
  const vp8x = chunk('VP8X', [0x02, 0, 0, 0, ...u24le(s.width - 1), ...u24le(s.height - 1)]);
  const anim = chunk('ANIM', [0, 0, 0, 0, 0, 0]);
  const head = concat([enc.encode('RIFF'), Uint8Array.from(u32le(0)), enc.encode('WEBP'), vp8x, anim]);
  await fh.write(head);
  let size = head.length;
  let index = 0;
  let closed = false;
  return {
    async write(rgb) {
      const still = await sharp(rgb, { raw: { width: s.width, height: s.height, channels: 3 } })
        .webp(s.quality >= 100 ? { lossless: true } : { quality: s.quality, smartSubsample: true, effort: 4 })
        .toBuffer();
      const parts = chunksOf(new Uint8Array(still.buffer, still.byteOffset, still.byteLength)).filter((c) =>
        ['ALPH', 'VP8 ', 'VP8L'].includes(c.fourcc),
      );
      const duration = Math.round((1000 * (index + 1)) / s.fps) - Math.round((1000 * index) / s.fps);
      const header = [
        0,
        0,
        0,
        0,
        0,
        0,
        ...u24le(s.width - 1),
        ...u24le(s.height - 1),
        ...u24le(duration),
        0x02,
      ];
      const frame = chunk('ANMF', concat([Uint8Array.from(header), ...parts.map((c) => c.bytes)]));
      await fh.write(frame);
      size += frame.length;
      index++;
    },
    async finish() {
      if (index === 0) throw new VideoError('EMPTY', path, 'no frames were written');
      await fh.write(Uint8Array.from(u32le(size - 8)), 0, 4, 4);
      closed = true;
      await fh.close();
    },
    async cancel() {
      if (!closed) {
        closed = true;
        await fh.close();
      }
    },
  };
}

interface AnmfRef {
  offset: number;
  size: number;
}

interface WebpLayout {
  width: number;
  height: number;
  animated: boolean;
  frames: AnmfRef[];
  durationsMs: number[];
}

/** Frame durations (ms) our writer uses for `fps`: the running time rounded to whole milliseconds. */
function durationsFor(fps: number, n: number): number[] {
  return Array.from(
    { length: n },
    (_, i) => Math.round((1000 * (i + 1)) / fps) - Math.round((1000 * i) / fps),
  );
}

/**
 * Frame rate of a WebP animation: an integer or NTSC (×1000/1001) rate whose rounded durations reproduce the
 * file's exactly, else frames per second of the total duration (10 when all durations are 0).
 */
function fpsFromDurations(d: number[]): number {
  const total = d.reduce((a, b) => a + b, 0);
  if (total === 0) return 10;
  const mean = (1000 * d.length) / total;
  for (const f of [Math.round(mean), Math.round(mean * 1.001) / 1.001]) {
    if (f > 0 && durationsFor(f, d.length).every((v, i) => v === d[i])) return f;
  }
  return mean;
}

async function readExact(
  fh: FileHandle,
  path: string,
  pos: number,
  n: number,
  what: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  const { bytesRead } = await fh.read(buf, 0, n, pos);
  if (bytesRead < n) throw new VideoError('TRUNCATED', path, `file ends inside ${what}`);
  return buf;
}

/** Reads the chunk headers (not the bitstreams) to find the canvas and each frame. */
async function scanWebp(fh: FileHandle, path: string, fileSize: number): Promise<WebpLayout> {
  const riff = await readExact(fh, path, 0, 12, 'the RIFF header');
  const riffEnd = 8 + new DataView(riff.buffer).getUint32(4, true);
  if (riffEnd > fileSize)
    throw new VideoError('TRUNCATED', path, `RIFF needs ${riffEnd} bytes, file has ${fileSize}`);
  const layout: WebpLayout = { width: 0, height: 0, animated: false, frames: [], durationsMs: [] };
  for (let p = 12; p < riffEnd;) {
    const h = await readExact(fh, path, p, 8, 'a chunk header');
    const fourcc = String.fromCharCode(...h.subarray(0, 4));
    if (!/^[A-Z0-9 ]{4}$/.test(fourcc))
      throw new VideoError('CORRUPT', path, `invalid WebP chunk at byte ${p}`);
    const size = new DataView(h.buffer).getUint32(4, true);
    if (p + 8 + size > riffEnd)
      throw new VideoError('TRUNCATED', path, `'${fourcc}' chunk runs past the end`);
    if (fourcc === 'VP8X') {
      const d = await readExact(fh, path, p + 8, 10, 'VP8X');
      layout.animated = (d[0]! & 0x02) !== 0;
      layout.width = 1 + (d[4]! | (d[5]! << 8) | (d[6]! << 16));
      layout.height = 1 + (d[7]! | (d[8]! << 8) | (d[9]! << 16));
      checkFrameSize(layout.width, layout.height, path, 'the WebP canvas');
    } else if (fourcc === 'ANMF') {
      const d = await readExact(fh, path, p + 8, 16, 'ANMF');
      layout.durationsMs.push(d[12]! | (d[13]! << 8) | (d[14]! << 16));
      layout.frames.push({ offset: p + 8, size });
    }
    p += 8 + size + (size & 1);
  }
  return layout;
}

async function decodeStill(data: Uint8Array, path: string, what: string) {
  try {
    return await sharp(data).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new VideoError('CORRUPT', path, `${what} cannot be decoded: ${String(err)}`);
  }
}

/** Opens an animated or still WebP. */
export async function openWebp(path: string): Promise<VideoReader> {
  const fh = await open(path, 'r');
  try {
    const layout = await scanWebp(fh, path, (await fh.stat()).size);
    if (layout.animated && layout.frames.length === 0)
      throw new VideoError('EMPTY', path, 'WebP has no frames');
    if (!layout.animated) return await openStillWebp(fh, path);
    const info: VideoInfo = {
      width: layout.width,
      height: layout.height,
      fps: fpsFromDurations(layout.durationsMs),
      frameCount: layout.frames.length,
      format: 'webp',
    };
    return {
      info,
      frames: () => webpFrames(fh, path, layout),
      close: () => fh.close().catch(() => undefined),
    };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

async function openStillWebp(fh: FileHandle, path: string): Promise<VideoReader> {
  const bytes = new Uint8Array(await fh.readFile());
  await fh.close();
  const { data, info: di } = await decodeStill(bytes, path, 'image');
  const info: VideoInfo = { width: di.width, height: di.height, fps: 10, frameCount: 1, format: 'webp' };
  return {
    info,
    async *frames() {
      yield rgbaToRgb(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    },
    async close() {},
  };
}

function rgbaToRgb(rgba: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) {
    out[o] = rgba[i]!;
    out[o + 1] = rgba[i + 1]!;
    out[o + 2] = rgba[i + 2]!;
  }
  return out;
}

/** Wraps an ANMF frame's ALPH/VP8/VP8L chunks as a standalone still WebP. */
function stillFromFrameData(data: Uint8Array, w: number, h: number): Uint8Array {
  const hasAlpha = String.fromCharCode(...data.subarray(0, 4)) === 'ALPH';
  const body = hasAlpha
    ? concat([chunk('VP8X', [0x10, 0, 0, 0, ...u24le(w - 1), ...u24le(h - 1)]), data])
    : data;
  return concat([enc.encode('RIFF'), Uint8Array.from(u32le(body.length + 4)), enc.encode('WEBP'), body]);
}

/** Draws an RGBA frame onto the RGBA canvas at (x, y), alpha-blending unless `blend` is false. */
function composite(
  canvas: Uint8Array,
  cw: number,
  src: Uint8Array,
  x0: number,
  y0: number,
  w: number,
  h: number,
  blend: boolean,
): void {
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (y * w + x) * 4;
      const d = ((y0 + y) * cw + x0 + x) * 4;
      const sa = src[s + 3]! / 255;
      if (!blend || sa === 1) {
        canvas.set(src.subarray(s, s + 4), d);
        continue;
      }
      const da = (canvas[d + 3]! / 255) * (1 - sa);
      const a = sa + da;
      for (let k = 0; k < 3; k++)
        canvas[d + k] = a === 0 ? 0 : Math.round((src[s + k]! * sa + canvas[d + k]! * da) / a);
      canvas[d + 3] = Math.round(a * 255);
    }
  }
}

async function* webpFrames(fh: FileHandle, path: string, layout: WebpLayout): AsyncGenerator<Uint8Array> {
  const { width: cw, height: ch } = layout;
  const canvas = new Uint8Array(cw * ch * 4);
  for (const [i, ref] of layout.frames.entries()) {
    const anmf = await readExact(fh, path, ref.offset, ref.size, `frame ${i}`);
    const x0 = 2 * (anmf[0]! | (anmf[1]! << 8) | (anmf[2]! << 16));
    const y0 = 2 * (anmf[3]! | (anmf[4]! << 8) | (anmf[5]! << 16));
    const w = 1 + (anmf[6]! | (anmf[7]! << 8) | (anmf[8]! << 16));
    const h = 1 + (anmf[9]! | (anmf[10]! << 8) | (anmf[11]! << 16));
    if (x0 + w > cw || y0 + h > ch)
      throw new VideoError('CORRUPT', path, `frame ${i} lies outside the canvas`);
    const { data, info } = await decodeStill(stillFromFrameData(anmf.subarray(16), w, h), path, `frame ${i}`);
    if (info.width !== w || info.height !== h) {
      throw new VideoError(
        'CORRUPT',
        path,
        `frame ${i} is ${info.width}x${info.height}, header says ${w}x${h}`,
      );
    }
    composite(
      canvas,
      cw,
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      x0,
      y0,
      w,
      h,
      (anmf[15]! & 0x02) === 0,
    );
    yield rgbaToRgb(canvas);
    if (anmf[15]! & 0x01)
      for (let y = y0; y < y0 + h; y++) canvas.fill(0, (y * cw + x0) * 4, (y * cw + x0 + w) * 4);
  }
}
