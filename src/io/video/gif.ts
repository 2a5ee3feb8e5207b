// Animated GIF, streaming both ways. Writing: each frame is palettized by sharp (libvips + libimagequant, up to
// 256 colours with dithering) as a one-frame GIF whose palette and LZW data we splice into our own GIF89a
// stream as a frame with a local colour table, so memory stays at one frame. Frame delays are whole
// centiseconds, chosen so the running time tracks i/fps; the exact fps is kept in a comment ("fps=<n>").
// Reading: our own decoder (LZW, interlace, transparency, disposal) composites each frame on a canvas.

import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import sharp from 'sharp';
import { VideoError, checkFrameSize } from './errors.js';
import { ByteReader, lzwDecode, toSubBlocks } from './gif_codec.js';
import type { FrameSink, VideoInfo, VideoReader } from './types.js';
import { KinemaError } from '../../errors.js';

const FPS_COMMENT = /^fps=([0-9.eE+-]+)$/;

function u16le(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff];
}

/** One palettized frame from sharp: colour table (3·2^k bytes), LZW min code size, raw sub-block bytes. */
interface PalettizedFrame {
  table: Uint8Array;
  tableBits: number;
  interlaced: boolean;
  lzw: Uint8Array;
}

/** Pulls the colour table and image data out of a one-frame GIF made by sharp. */
function parseSingleFrameGif(gif: Uint8Array): PalettizedFrame {
  let p = 13;
  let table: Uint8Array = new Uint8Array(0);
  let tableBits = 0;
  const lsd = gif[10]!;
  if (lsd & 0x80) {
    tableBits = lsd & 7;
    table = gif.subarray(p, p + 3 * (2 << tableBits));
    p += table.length;
  }
  const skipBlocks = (): void => {
    while (gif[p] !== 0) p += gif[p]! + 1;
    p++;
  };
  while (gif[p] === 0x21) {
    p += 2;
    skipBlocks();
  }
  if (gif[p] !== 0x2c) throw new KinemaError('VIDEO_ENCODE_FAILED', 'sharp produced a GIF without an image');
  const packed = gif[p + 9]!;
  p += 10;
  if (packed & 0x80) {
    tableBits = packed & 7;
    table = gif.subarray(p, p + 3 * (2 << tableBits));
    p += table.length;
  }
  const start = p;
  p++;
  skipBlocks();
  return { table, tableBits, interlaced: (packed & 0x40) !== 0, lzw: gif.subarray(start, p) };
}

export async function createGifSink(
  path: string,
  s: { width: number; height: number; fps: number; quality: number },
): Promise<FrameSink> {
  if (s.width > 65535 || s.height > 65535) {
    throw new VideoError('UNSUPPORTED', path, 'GIF frames are at most 65535x65535');
  }
  const fh = await open(path, 'wx');
  const comment = new TextEncoder().encode(`fps=${s.fps}`);
  const header = Uint8Array.from([
    ...new TextEncoder().encode('GIF89a'),
    ...u16le(s.width),
    ...u16le(s.height),
    0x70,
    0,
    0,
    ...[0x21, 0xff, 0x0b, ...new TextEncoder().encode('NETSCAPE2.0'), 3, 1, 0, 0, 0],
    ...[0x21, 0xfe, ...toSubBlocks(comment)],
  ]);
  await fh.write(header);
  let index = 0;
  let closed = false;
  return {
    async write(rgb) {
      const single = await sharp(rgb, { raw: { width: s.width, height: s.height, channels: 3 } })
        .gif({ colours: 256, effort: 3, dither: s.quality >= 50 ? 1.0 : 0.5 })
        .toBuffer();
      const f = parseSingleFrameGif(new Uint8Array(single.buffer, single.byteOffset, single.byteLength));
      const delay = Math.round((100 * (index + 1)) / s.fps) - Math.round((100 * index) / s.fps);
      const gce = [0x21, 0xf9, 4, 0x04, ...u16le(Math.min(delay, 65535)), 0, 0];
      const desc = [
        0x2c,
        0,
        0,
        0,
        0,
        ...u16le(s.width),
        ...u16le(s.height),
        0x80 | (f.interlaced ? 0x40 : 0) | f.tableBits,
      ];
      await fh.write(Uint8Array.from([...gce, ...desc]));
      await fh.write(f.table);
      await fh.write(f.lzw);
      index++;
    },
    async finish() {
      if (index === 0) throw new VideoError('EMPTY', path, 'no frames were written');
      await fh.write(Uint8Array.of(0x3b));
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

/** Logical screen and what a scan of the blocks found. */
interface GifLayout {
  width: number;
  height: number;
  globalTable: Uint8Array | null;
  frames: number;
  totalDelayCs: number;
  fpsComment: number | null;
}

interface ImageBlock {
  left: number;
  top: number;
  w: number;
  h: number;
  table: Uint8Array;
  interlaced: boolean;
  indices: Uint8Array;
}

interface Control {
  disposal: number;
  transparent: number;
  delay: number;
}

/** Walks a GIF's blocks, yielding each image (decoded when `decode` is set); `layout` fills in as it goes. */
async function* walkGif(
  path: string,
  fh: FileHandle,
  decode: boolean,
  layoutOut: { layout?: GifLayout },
): AsyncGenerator<{ img: ImageBlock | null; ctl: Control }> {
  const r = new ByteReader(fh, (what) => new VideoError('TRUNCATED', path, `file ends inside ${what}`));
  await r.bytes(6, 'the header');
  const width = await r.u16('the screen descriptor');
  const height = await r.u16('the screen descriptor');
  const packed = await r.u8('the screen descriptor');
  await r.bytes(2, 'the screen descriptor');
  const globalTable = packed & 0x80 ? await r.bytes(3 * (2 << (packed & 7)), 'the colour table') : null;
  const layout: GifLayout = { width, height, globalTable, frames: 0, totalDelayCs: 0, fpsComment: null };
  layoutOut.layout = layout;
  if (width === 0 || height === 0) throw new VideoError('CORRUPT', path, 'GIF screen size is 0');
  checkFrameSize(width, height, path, 'the GIF screen');
  let ctl: Control = { disposal: 0, transparent: -1, delay: 0 };
  for (;;) {
    const block = await r.u8('a block introducer');
    if (block === 0x3b) return;
    if (block === 0x21) {
      const label = await r.u8('an extension');
      const data = await r.subBlocks('an extension');
      if (label === 0xf9 && data.length >= 4) {
        ctl = {
          disposal: (data[0]! >> 2) & 7,
          transparent: data[0]! & 1 ? data[3]! : -1,
          delay: data[1]! | (data[2]! << 8),
        };
      } else if (label === 0xfe) {
        const m = FPS_COMMENT.exec(new TextDecoder().decode(data));
        if (m && Number(m[1]) > 0) layout.fpsComment = Number(m[1]);
      }
      continue;
    }
    if (block !== 0x2c) throw new VideoError('CORRUPT', path, `unexpected GIF block 0x${block.toString(16)}`);
    const d = await r.bytes(9, 'an image descriptor');
    const [left, top, w, h] = [0, 2, 4, 6].map((o) => d[o]! | (d[o + 1]! << 8)) as [
      number,
      number,
      number,
      number,
    ];
    const table = d[8]! & 0x80 ? await r.bytes(3 * (2 << (d[8]! & 7)), 'a colour table') : globalTable;
    if (table === null) throw new VideoError('CORRUPT', path, 'image has no colour table');
    const minCode = await r.u8('image data');
    if (minCode < 2 || minCode > 11)
      throw new VideoError('CORRUPT', path, `invalid LZW code size ${minCode}`);
    const data = await r.subBlocks('image data');
    let img: ImageBlock | null = null;
    if (decode) {
      const indices = lzwDecode(data, minCode, w * h);
      if (indices === null)
        throw new VideoError('CORRUPT', path, `invalid LZW data in frame ${layout.frames}`);
      img = { left, top, w, h, table, interlaced: (d[8]! & 0x40) !== 0, indices };
    }
    layout.frames++;
    layout.totalDelayCs += ctl.delay;
    yield { img, ctl };
    ctl = { disposal: 0, transparent: -1, delay: 0 };
  }
}

/** Row order of an interlaced image: passes starting at 0, 4, 2, 1 with steps 8, 8, 4, 2. */
function interlacedRows(h: number): number[] {
  const rows: number[] = [];
  for (const [start, step] of [
    [0, 8],
    [4, 8],
    [2, 4],
    [1, 2],
  ] as const) {
    for (let y = start; y < h; y += step) rows.push(y);
  }
  return rows;
}

/** Draws an image onto the RGB canvas (transparent pixels keep what is there). */
function drawImage(canvas: Uint8Array, cw: number, ch: number, img: ImageBlock, transparent: number): void {
  const rows = img.interlaced ? interlacedRows(img.h) : null;
  for (let i = 0; i < img.h; i++) {
    const y = img.top + (rows ? rows[i]! : i);
    if (y >= ch) continue;
    for (let x = 0; x < img.w; x++) {
      const px = img.left + x;
      const idx = img.indices[i * img.w + x]!;
      if (px >= cw || idx === transparent) continue;
      const o = (y * cw + px) * 3;
      canvas[o] = img.table[idx * 3] ?? 0;
      canvas[o + 1] = img.table[idx * 3 + 1] ?? 0;
      canvas[o + 2] = img.table[idx * 3 + 2] ?? 0;
    }
  }
}

function clearRect(canvas: Uint8Array, cw: number, ch: number, img: ImageBlock): void {
  for (let y = img.top; y < Math.min(ch, img.top + img.h); y++) {
    canvas.fill(0, (y * cw + img.left) * 3, (y * cw + Math.min(cw, img.left + img.w)) * 3);
  }
}

/** Opens an animated (or still) GIF. Transparent areas read as black. */
export async function openGif(path: string): Promise<VideoReader> {
  const fh = await open(path, 'r');
  const scan: { layout?: GifLayout } = {};
  try {
    for await (const _ of walkGif(path, fh, false, scan));
  } catch (err) {
    await fh.close();
    throw err;
  }
  const layout = scan.layout!;
  if (layout.frames === 0) {
    await fh.close();
    throw new VideoError('EMPTY', path, 'GIF has no frames');
  }
  const meanDelay = layout.totalDelayCs / layout.frames;
  const info: VideoInfo = {
    width: layout.width,
    height: layout.height,
    // Browsers treat a 0 delay as 10 cs.
    fps: layout.fpsComment ?? (meanDelay > 0 ? 100 / meanDelay : 10),
    frameCount: layout.frames,
    format: 'gif',
  };
  return {
    info,
    frames: () => gifFrames(path, fh, info),
    async close() {
      await fh.close().catch(() => undefined);
    },
  };
}

async function* gifFrames(path: string, fh: FileHandle, info: VideoInfo): AsyncGenerator<Uint8Array> {
  const { width: cw, height: ch } = info;
  const canvas = new Uint8Array(cw * ch * 3);
  for await (const { img, ctl } of walkGif(path, fh, true, {})) {
    const saved = ctl.disposal === 3 ? canvas.slice() : null;
    drawImage(canvas, cw, ch, img!, ctl.transparent);
    yield canvas.slice();
    if (ctl.disposal === 2) clearRect(canvas, cw, ch, img!);
    if (saved) canvas.set(saved);
  }
}
