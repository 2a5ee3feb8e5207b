// A folder of PNG frames: frame_00000.png, frame_00001.png, … plus video.json ({"fps", "width", "height",
// "frame_count"}) so that the frame rate survives a round trip. PNG is lossless: frames read back exactly.

import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import type { Metadata, OutputInfo } from 'sharp';
import { checkFrameSize, VideoError, fsErrorToVideoError } from './errors.js';
import type { FrameSink, VideoInfo, VideoReader } from './types.js';

export const FRAME_NAME = /^frame_(\d{5,})\.png$/;
const META_NAME = 'video.json';
/** Frame rate assumed for a folder without video.json. */
export const DEFAULT_FOLDER_FPS = 30;

export function frameFileName(index: number): string {
  return `frame_${String(index).padStart(5, '0')}.png`;
}

export async function createPngFolderSink(
  folder: string,
  s: { width: number; height: number; fps: number },
): Promise<FrameSink> {
  await mkdir(folder);
  let index = 0;
  return {
    async write(rgb) {
      const png = await sharp(rgb, { raw: { width: s.width, height: s.height, channels: 3 } })
        .png({ compressionLevel: 6 })
        .toBuffer();
      await writeFile(join(folder, frameFileName(index)), png);
      index++;
    },
    async finish() {
      if (index === 0) throw new VideoError('EMPTY', folder, 'no frames were written');
      const meta = { fps: s.fps, width: s.width, height: s.height, frame_count: index };
      await writeFile(join(folder, META_NAME), `${JSON.stringify(meta)}\n`);
    },
    async cancel() {},
  };
}

async function readFps(folder: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(join(folder, META_NAME), 'utf8');
  } catch {
    return DEFAULT_FOLDER_FPS;
  }
  const fps = (JSON.parse(text) as { fps?: unknown }).fps;
  if (typeof fps !== 'number' || !(fps > 0)) {
    throw new VideoError('CORRUPT', join(folder, META_NAME), 'fps must be a positive number');
  }
  return fps;
}

async function decodePng(path: string, width: number, height: number): Promise<Uint8Array> {
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await sharp(path)
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true }));
  } catch (err) {
    throw (
      fsErrorToVideoError(err, path) ?? new VideoError('CORRUPT', path, `not a readable PNG: ${String(err)}`)
    );
  }
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new VideoError(
      'BAD_FRAME',
      path,
      `frame is ${info.width}x${info.height}, expected ${width}x${height}`,
    );
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Opens a folder of frame_NNNNN.png files (numbered from 0 without gaps). */
export async function openPngFolder(folder: string): Promise<VideoReader> {
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (err) {
    throw fsErrorToVideoError(err, folder) ?? err;
  }
  const frames = names.filter((n) => FRAME_NAME.test(n)).sort();
  if (frames.length === 0) throw new VideoError('UNREADABLE', folder, 'folder has no frame_NNNNN.png files');
  frames.forEach((name, i) => {
    if (Number(FRAME_NAME.exec(name)![1]) !== i) {
      throw new VideoError('CORRUPT', folder, `frame numbering has a gap: ${name} is frame ${i}`);
    }
  });
  const first = join(folder, frames[0]!);
  let meta: Metadata;
  try {
    meta = await sharp(first).metadata();
  } catch (err) {
    throw new VideoError('CORRUPT', first, `not a readable PNG: ${String(err)}`);
  }
  checkFrameSize(meta.width, meta.height, first, 'the first frame');
  const info: VideoInfo = {
    width: meta.width,
    height: meta.height,
    fps: await readFps(folder),
    frameCount: frames.length,
    format: 'png',
  };
  return {
    info,
    async *frames() {
      for (const name of frames) yield await decodePng(join(folder, name), info.width, info.height);
    },
    async close() {},
  };
}
