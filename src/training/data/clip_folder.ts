// A folder of the user's own clips as training data: every `NAME.mp4` (or .webm, .gif, .webp) with a caption
// in `NAME.txt` next to it. Clips are decoded once, resized to the training size (bilinear) and kept in
// memory; example i is clip i mod n, from a start frame that walks through the clip (so every window of a
// longer clip is used), a pure function of i as the trainer needs for exact resumes.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, basename } from 'node:path';
import { readAllFrames } from '../../io/video/index.js';
import { resizeRgbBilinear } from '../../metrics/image_ops.js';
import type { ClipSource } from '../stages/unet_settings.js';
import { KinemaError } from '../../errors.js';

const VIDEO_EXTENSIONS = ['.mp4', '.webm', '.gif', '.webp'];

export interface FolderClip {
  readonly name: string;
  readonly caption: string;
  readonly frames: Uint8Array[];
}

/** Reads every captioned clip of `dir` at width × height; needs at least `frames` frames per clip. */
export async function readClipFolder(
  dir: string,
  size: { width: number; height: number; frames: number },
): Promise<FolderClip[]> {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new KinemaError('TRAIN_BAD_OPTION', `--data ${dir}: not a folder`);
  const videos = readdirSync(dir)
    .filter((n) => VIDEO_EXTENSIONS.includes(extname(n).toLowerCase()))
    .sort();
  if (videos.length === 0)
    throw new KinemaError(
      'TRAIN_BAD_OPTION',
      `--data ${dir}: no clips (expected NAME.mp4 / .webm / .gif / .webp, each with a caption in NAME.txt)`,
    );
  const clips: FolderClip[] = [];
  for (const file of videos) {
    const stem = basename(file, extname(file));
    const captionPath = join(dir, `${stem}.txt`);
    if (!existsSync(captionPath))
      throw new KinemaError('TRAIN_BAD_OPTION', `--data ${dir}: ${file} has no caption file ${stem}.txt`);
    const caption = readFileSync(captionPath, 'utf8').trim();
    if (caption === '') throw new KinemaError('TRAIN_BAD_OPTION', `--data ${dir}: ${stem}.txt is empty`);
    const { info, frames } = await readAllFrames(join(dir, file));
    if (frames.length < size.frames)
      throw new KinemaError(
        'TRAIN_BAD_OPTION',
        `--data ${dir}: ${file} has ${frames.length} frames; training clips need at least ${size.frames}`,
      );
    const resized = frames.map((f) => resizeRgbBilinear(f, info.width, info.height, size.width, size.height));
    clips.push({ name: file, caption, frames: resized });
  }
  return clips;
}

/** The clips as a training source (stills: one frame of a clip with its caption). */
export function clipFolderSource(clips: readonly FolderClip[]): ClipSource {
  return (index, q) => {
    const clip = clips[index % clips.length]!;
    const windows = clip.frames.length - q.frames + 1;
    const start = Math.floor(index / clips.length) % windows;
    return { caption: clip.caption, frames: clip.frames.slice(start, start + q.frames) };
  };
}
