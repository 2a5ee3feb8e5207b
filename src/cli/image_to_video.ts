// `kinema generate "…" --image FILE.png [--image-scale 1] [--first-frame none|replace]`: image-to-video with the
// model folder's image_adapter/ (VideoCrafter1's method, src/pipelines/image_to_video.ts). The flags are checked
// with the rest of `generate` before any weights load (generate_checks.ts calls checkImageFlags).
import { existsSync, statSync } from 'node:fs';
import { Command, Option } from 'commander';
import { KinemaError } from '../errors.js';
import { numberOption } from './options.js';
import { hasImageAdapter } from '../pipelines/image_to_video.js';
import type { FirstFrameMode } from '../pipelines/image_to_video.js';

export interface ImageFlags {
  image?: string;
  imageScale?: number;
  firstFrame?: FirstFrameMode;
}

export function addImageOptions(cmd: Command): Command {
  return cmd
    .option(
      '--image <file.png>',
      "image-to-video: animate this PNG (the output's size) with the model's image_adapter/",
    )
    .option(
      '--image-scale <s>',
      '--image: strength of the image attention (default 1)',
      numberOption('--image-scale'),
    )
    .addOption(
      new Option(
        '--first-frame <mode>',
        "--image: 'replace' (default) also pins the first frame's latents to the image's; 'none': the image adapter alone",
      ).choices(['none', 'replace']),
    );
}

/** Named errors for image flags that cannot work with this model folder or request; no weights read. */
export function checkImageFlags(f: ImageFlags, modelDir: string, o: { pipeline: string }): void {
  if (f.image === undefined) {
    const extra =
      f.imageScale !== undefined ? '--image-scale' : f.firstFrame !== undefined ? '--first-frame' : null;
    if (extra)
      throw new KinemaError(
        'GENERATE_BAD_OPTION',
        `${extra} configures image-to-video; add --image FILE.png`,
      );
    return;
  }
  if (o.pipeline !== 'TextToVideoSDPipeline')
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--image: ${modelDir} is a ${o.pipeline}; image-to-video needs a text-to-video folder with image_adapter/`,
    );
  if (!hasImageAdapter(modelDir))
    throw new KinemaError(
      'I2V_NO_ADAPTER',
      `--image: ${modelDir} has no image_adapter/ (train one: kinema train i2v --base ${modelDir} --export ${modelDir})`,
    );
  if (!(existsSync(f.image) && statSync(f.image).isFile()))
    throw new KinemaError('I2V_BAD_IMAGE', `--image ${f.image}: no such file`);
  if (f.imageScale !== undefined && !Number.isFinite(f.imageScale))
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `--image-scale must be a finite number, got ${f.imageScale}`,
    );
}
