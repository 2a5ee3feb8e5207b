// Video I/O from npm packages alone: MP4 (H.264) and WebM (VP9) via mediabunny + @napi-rs/webcodecs, GIF with
// our own streaming codec, animated WebP with our own RIFF layer around sharp's still-image codec, and folders of
// PNG frames via sharp. Frames are RGB24 (h*w*3, row-major). Writers stream to a temp name beside the
// destination and rename it into place on close().

import { open, stat } from 'node:fs/promises';
import { dirname, extname } from 'node:path';
import { createContainerSink, openContainer } from './container.js';
import { VideoError, checkRgbFrame, fsErrorToVideoError } from './errors.js';
import { createGifSink, openGif } from './gif.js';
import { createPngFolderSink, openPngFolder } from './png_frames.js';
import { checkContainerStructure, sniffFormat } from './probe.js';
import { commitTemp, removeTemp, tempPathFor } from './atomic.js';
import type { FrameSink, VideoFormat, VideoReader, VideoWriter, VideoWriterOptions } from './types.js';
import { createWebpSink, openWebp } from './webp.js';

export { VideoError } from './errors.js';
export type { VideoErrorCode } from './errors.js';
export type { VideoFormat, VideoInfo, VideoReader, VideoWriter, VideoWriterOptions } from './types.js';

export const DEFAULT_QUALITY = 75;

const EXTENSIONS: Record<string, VideoFormat> = {
  '.mp4': 'mp4',
  '.m4v': 'mp4',
  '.mov': 'mp4',
  '.webm': 'webm',
  '.mkv': 'webm',
  '.gif': 'gif',
  '.webp': 'webp',
};

/** The format a path's extension names; a path with no extension (or a trailing slash) is a PNG frame folder. */
export function formatFromPath(path: string): VideoFormat {
  if (path.endsWith('/')) return 'png';
  const ext = extname(path).toLowerCase();
  if (ext === '') return 'png';
  const format = EXTENSIONS[ext];
  if (format === undefined) {
    throw new VideoError(
      'UNSUPPORTED',
      path,
      `unknown video extension '${ext}' (mp4, webm, gif, webp, or a folder)`,
    );
  }
  return format;
}

async function statOrThrow(path: string): Promise<Awaited<ReturnType<typeof stat>>> {
  try {
    return await stat(path);
  } catch (err) {
    throw fsErrorToVideoError(err, path) ?? err;
  }
}

async function checkReadable(path: string): Promise<void> {
  try {
    await (await open(path, 'r')).close();
  } catch (err) {
    throw fsErrorToVideoError(err, path) ?? err;
  }
}

/** Opens a video file (MP4/MOV, WebM/MKV, GIF, WebP) or PNG frame folder for streaming RGB24 decode. */
export async function openVideo(path: string): Promise<VideoReader> {
  const st = await statOrThrow(path);
  if (st.isDirectory()) return openPngFolder(path);
  if (!st.isFile()) throw new VideoError('UNREADABLE', path, 'not a regular file or folder');
  if (st.size === 0) throw new VideoError('EMPTY', path, 'file is empty');
  await checkReadable(path);
  const format = await sniffFormat(path);
  if (format === null) {
    const claimed = EXTENSIONS[extname(path).toLowerCase()];
    if (claimed !== undefined) {
      throw new VideoError('CORRUPT', path, `does not start like a ${claimed} file`);
    }
    throw new VideoError('UNSUPPORTED', path, 'unrecognized container (expected MP4, WebM, GIF or WebP)');
  }
  switch (format) {
    case 'gif':
      return openGif(path);
    case 'webp':
      return openWebp(path);
    default:
      await checkContainerStructure(path, format, Number(st.size));
      return openContainer(path);
  }
}

/** Decodes every frame of a video into memory (use openVideo to stream long videos). */
export async function readAllFrames(
  path: string,
): Promise<{ info: VideoReader['info']; frames: Uint8Array[] }> {
  const reader = await openVideo(path);
  try {
    const frames: Uint8Array[] = [];
    for await (const f of reader.frames()) frames.push(f);
    return { info: reader.info, frames };
  } finally {
    await reader.close();
  }
}

function checkWriterOptions(path: string, opts: VideoWriterOptions): Required<VideoWriterOptions> {
  const { width, height, fps } = opts;
  const bad = (msg: string): VideoError => new VideoError('BAD_FRAME', path, msg);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw bad(`frame size must be positive integers, got ${width}x${height}`);
  }
  if (!Number.isFinite(fps) || fps <= 0) throw bad(`fps must be a positive number, got ${fps}`);
  const quality = opts.quality ?? DEFAULT_QUALITY;
  if (!Number.isFinite(quality) || quality < 0 || quality > 100) {
    throw bad(`quality must be in 0..100, got ${quality}`);
  }
  return { width, height, fps, quality, format: opts.format ?? formatFromPath(path) };
}

async function createSink(temp: string, o: Required<VideoWriterOptions>): Promise<FrameSink> {
  const settings = { width: o.width, height: o.height, fps: o.fps, quality: o.quality };
  switch (o.format) {
    case 'mp4':
    case 'webm':
      return createContainerSink(temp, o.format, settings);
    case 'gif':
      return createGifSink(temp, settings);
    case 'webp':
      return createWebpSink(temp, settings);
    case 'png':
      return createPngFolderSink(temp, settings);
  }
}

/**
 * Creates a streaming writer. Output goes to a hidden temp name in the destination folder and is renamed to
 * `path` by close(); abort() or any failure deletes it, leaving an existing `path` untouched.
 */
export async function createVideoWriter(path: string, opts: VideoWriterOptions): Promise<VideoWriter> {
  const o = checkWriterOptions(path, opts);
  const folder = await statOrThrow(dirname(path));
  if (!folder.isDirectory())
    throw new VideoError('NOT_FOUND', path, 'the destination folder is not a folder');
  const temp = tempPathFor(path);
  let sink: FrameSink;
  try {
    sink = await createSink(temp, o);
  } catch (err) {
    await removeTemp(temp);
    throw fsErrorToVideoError(err, path) ?? err;
  }
  let state: 'open' | 'closed' | 'failed' = 'open';
  const fail = async (err: unknown): Promise<never> => {
    state = 'failed';
    await sink.cancel().catch(() => undefined);
    await removeTemp(temp);
    throw err;
  };
  const ensureOpen = (): void => {
    if (state !== 'open') throw new VideoError('BAD_FRAME', path, `writer is ${state}`);
  };
  return {
    async write(rgb) {
      ensureOpen();
      try {
        checkRgbFrame(rgb, o.width, o.height, path);
        await sink.write(rgb);
      } catch (err) {
        await fail(err);
      }
    },
    async close() {
      ensureOpen();
      try {
        await sink.finish();
        await commitTemp(temp, path, o.format === 'png');
        state = 'closed';
      } catch (err) {
        await fail(err);
      }
    },
    async abort() {
      if (state !== 'open') return;
      state = 'failed';
      await sink.cancel().catch(() => undefined);
      await removeTemp(temp);
    },
  };
}

/** Writes all `frames` to `path` (streaming); on any failure nothing is left at `path`'s temp name. */
export async function writeVideo(
  path: string,
  frames: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  opts: VideoWriterOptions,
): Promise<void> {
  const writer = await createVideoWriter(path, opts);
  try {
    for await (const f of frames) await writer.write(f);
  } catch (err) {
    await writer.abort();
    throw err;
  }
  await writer.close();
}
