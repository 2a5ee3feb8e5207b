// `kinema generate --long streaming` (StreamingT2V) before any weights load: the model folder's adapters
// (streaming/ + image_encoder/), the overlap they need (their F_cond), the base they were trained on (the
// SHA-256 of unet/'s weights, a few milliseconds for the default model), and the --anchor file's existence.
// Also picks --long streaming when --frames is longer than one window and the folder has adapters.
import { existsSync, readFileSync, statSync } from 'node:fs';
import sharp from 'sharp';
import { join } from 'node:path';
import { KinemaError } from '../errors.js';
import { readConfig } from '../io/model_folder.js';
import { parseStreamingConfig } from '../models/streaming/config.js';
import { checkAdapterBase } from '../pipelines/adapter_folder.js';
import { hasStreamingAdapters } from '../pipelines/streaming_t2v.js';
import { DEFAULT_CHUNK } from '../pipelines/long_video/chunked.js';
import { longVideoRequest } from './long_video_options.js';
import type { LongVideoFlags, LongVideoRequest } from './long_video_options.js';

/**
 * The long-video request after the model folder is known: `long` itself, or --long streaming picked for a
 * --frames longer than one window when the folder has adapters (no long-video flag given), with the overlap
 * set to the adapters' F_cond; every streaming check done.
 */
export function planStreaming(
  modelDir: string,
  long: LongVideoRequest | null,
  flags: LongVideoFlags & { frames: number; steps: number },
): LongVideoRequest | null {
  let req = long;
  if (!req && flags.frames > DEFAULT_CHUNK && flags.latents === undefined && hasStreamingAdapters(modelDir)) {
    const picked = longVideoRequest({ ...flags, long: 'streaming' }, flags.frames, flags.steps)!;
    req = { ...picked, streaming: { anchor: undefined, implicit: true } };
  }
  if (!req?.streaming) return req;
  if (!hasStreamingAdapters(modelDir) || !existsSync(join(modelDir, 'image_encoder')))
    throw new KinemaError(
      'STREAMING_NO_ADAPTERS',
      `--long streaming: ${modelDir} has no StreamingT2V adapters (streaming/ and image_encoder/); train them ` +
        `with kinema train cam-apm --base ${modelDir} --export ${modelDir}, or use --long naive|vidrd`,
    );
  const raw = readConfig(join(modelDir, 'streaming'));
  const config = parseStreamingConfig(raw, join(modelDir, 'streaming', 'config.json'));
  checkAdapterBase(modelDir, join(modelDir, 'streaming'), raw['base_unet_sha256'], 'STREAMING_WRONG_BASE');
  if (req.overlap !== config.condFrames) {
    if (flags.overlap !== undefined)
      throw new KinemaError(
        'LONG_STREAMING_OVERLAP',
        `--long streaming: the adapters condition on ${config.condFrames} frames, so --overlap must be ` +
          `${config.condFrames} (got ${flags.overlap}); drop --overlap to use it`,
      );
    const again = longVideoRequest(
      { ...flags, long: 'streaming', overlap: config.condFrames },
      flags.frames,
      flags.steps,
    )!;
    req = { ...again, streaming: req.streaming };
  }
  const anchor = req.streaming!.anchor;
  if (anchor !== undefined && !(existsSync(anchor) && statSync(anchor).isFile()))
    throw new KinemaError('STREAMING_ANCHOR_BAD', `--anchor ${anchor}: no such file`);
  return req;
}

/** `--anchor FILE` as RGB24 of the video's size (resized and centre-cropped; STREAMING_ANCHOR_BAD if unreadable). */
export async function readAnchorImage(path: string, width: number, height: number): Promise<Uint8Array> {
  return readImageFile(path, width, height, '--anchor', 'STREAMING_ANCHOR_BAD');
}

/**
 * An image file (PNG, JPEG, WebP, … what sharp decodes) as RGB24 of exactly width×height: an image of another
 * size is scaled to cover the frame and centre-cropped (sharp's `cover`), with a note on stderr saying so.
 * `code` names the failure when it does not decode.
 */
export async function readImageFile(
  path: string,
  width: number,
  height: number,
  flag: string,
  code: 'STREAMING_ANCHOR_BAD' | 'I2V_BAD_IMAGE',
  note: (line: string) => void = (line) => process.stderr.write(line),
): Promise<Uint8Array> {
  let size: { width?: number; height?: number };
  try {
    size = await sharp(path).metadata();
  } catch (e) {
    throw new KinemaError(code, `${flag} ${path}: not a readable image (${(e as Error).message})`);
  }
  const [w0, h0] = [size.width ?? 0, size.height ?? 0];
  if (!(w0 > 0 && h0 > 0)) throw new KinemaError(code, `${flag} ${path}: the image has no size`);
  let data: Buffer;
  try {
    data = await sharp(path)
      .removeAlpha()
      .toColourspace('srgb')
      .resize(width, height, { fit: 'cover', position: 'centre' })
      .raw()
      .toBuffer();
  } catch (e) {
    throw new KinemaError(code, `${flag} ${path}: not a readable image (${(e as Error).message})`);
  }
  if (w0 !== width || h0 !== height)
    note(`note: ${flag} ${path} is ${w0}×${h0}; scaled to cover ${width}×${height} and centre-cropped\n`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
