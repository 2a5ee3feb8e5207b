// VideoCrafter1's image conditioning (LatentVisualDiffusion.get_image_embeds, lvdm/models/ddpm3d.py) on a loaded
// I2V model: the image in the model's [-1, 1] range → FrozenOpenCLIPImageEmbedderV2.preprocess ((x + 1) / 2, then
// CLIP's mean/std) → the OpenCLIP visual tower's tokens of its last block before ln_post (257 for ViT-H/14 at 224²)
// → the Resampler → 16 image tokens, appended after the 77 text tokens of the UNet's context.
//
// The unconditional image of classifier-free guidance (scripts/evaluation/funcs.py batch_ddim_sampling) is
// `torch.zeros(b, 3, 224, 224)` passed through the same get_image_embeds: all-zero in the [-1, 1] range, i.e.
// mid-grey (0.5) before CLIP's normalisation, not a zero tensor after it and not zero image tokens.
//
// The release resizes whatever it is given to 224² with kornia (bicubic, antialiased, align_corners; aspect ratio
// not kept). At the tower's own size that resize returns its input unchanged; other sizes are refused here
// (kornia's antialiased bicubic is not reproduced): resize first.
import type { HostTensor } from '../../engine/runtime.js';
import { hostTensor } from '../../engine/runtime.js';
import type { CLIPVisionModel } from '../clip/vision_model.js';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../../metrics/clip_metrics.js';
import type { LvdmResampler } from './image_proj.js';
import { LVDM_TEXT_TOKENS } from './config.js';
import { KinemaError } from '../../errors.js';

/** The two image parts of a loaded I2V model (LoadedLvdmI2V has both). */
export interface LvdmImageConditioner {
  readonly imageEncoder: CLIPVisionModel;
  readonly imageProj: LvdmResampler;
}

/**
 * 8-bit RGB, row-major [height, width, 3] → the release's image tensor [3, height, width] in [-1, 1]
 * (load_image_batch / the gradio demo: (v / 255 − 0.5) · 2).
 */
export function rgbToLvdmImage(rgb: Uint8Array, width: number, height: number): Float32Array {
  if (rgb.length !== width * height * 3)
    throw new KinemaError(
      'LVDM_BAD_INPUT',
      `rgbToLvdmImage: expected ${width * height * 3} bytes for ${width}×${height} RGB, got ${rgb.length}`,
    );
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++)
    for (let c = 0; c < 3; c++)
      out[c * plane + i] = Math.fround((Math.fround(rgb[i * 3 + c]! / 255) - 0.5) * 2);
  return out;
}

/**
 * `count` images [3, S, S] in [-1, 1], back to back, at the tower's size S → CLIP pixels:
 * FrozenOpenCLIPImageEmbedderV2.preprocess, (x + 1) / 2 then (x − mean) / std per channel, in float32.
 */
export function lvdmClipPixels(images: Float32Array, count: number, size: number): Float32Array {
  const plane = size * size;
  if (images.length !== count * 3 * plane)
    throw new KinemaError(
      'LVDM_BAD_INPUT',
      `VideoCrafter image conditioning: ${images.length} values are not ${count} RGB images of the visual ` +
        `tower's ${size}×${size} (the release resizes to it with kornia's antialiased bicubic, which Kinema does ` +
        `not reproduce: resize the image to ${size}×${size} first)`,
    );
  const mean = OPENAI_CLIP_MEAN.map((v) => Math.fround(v));
  const std = OPENAI_CLIP_STD.map((v) => Math.fround(v));
  const out = new Float32Array(images.length);
  for (let n = 0; n < count; n++) {
    for (let c = 0; c < 3; c++) {
      const base = (n * 3 + c) * plane;
      for (let i = 0; i < plane; i++) {
        const unit = Math.fround(Math.fround(images[base + i]! + 1) / 2);
        out[base + i] = Math.fround(Math.fround(unit - mean[c]!) / std[c]!);
      }
    }
  }
  return out;
}

/**
 * get_image_embeds: `count` images [3, S, S] in [-1, 1] at the visual tower's size → image tokens
 * [count, numQueries, outputDim] (16 × 1024 in the release) for the UNet context after the 77 text tokens.
 */
export async function lvdmImageEmbeds(
  model: LvdmImageConditioner,
  images: Float32Array,
  count: number,
): Promise<HostTensor> {
  const size = model.imageEncoder.config.imageSize;
  const pixels = lvdmClipPixels(images, count, size);
  const tokens = (await model.imageEncoder.encode(pixels, count)).lastHiddenState;
  return model.imageProj.run(tokens);
}

/** The unconditional image tokens: get_image_embeds of the all-zero image (zero in [-1, 1], mid-grey). */
export async function lvdmUnconditionalImageEmbeds(
  model: LvdmImageConditioner,
  count: number,
): Promise<HostTensor> {
  const size = model.imageEncoder.config.imageSize;
  return lvdmImageEmbeds(model, new Float32Array(count * 3 * size * size), count);
}

/** The UNet context of an I2V model: text states [B, 77, D] ‖ image tokens [B, Q, D] along the tokens → [B, 77 + Q, D]. */
export function lvdmImageContext(text: HostTensor, image: HostTensor): HostTensor {
  const [b, lt, d] = text.shape as [number, number, number];
  const [bi, q, di] = image.shape as [number, number, number];
  if (text.shape.length !== 3 || lt !== LVDM_TEXT_TOKENS || image.shape.length !== 3 || bi !== b || di !== d)
    throw new KinemaError(
      'LVDM_BAD_INPUT',
      `lvdmImageContext: want text [B, ${LVDM_TEXT_TOKENS}, D] and image tokens [B, Q, D], got ` +
        `[${text.shape.join(', ')}] and [${image.shape.join(', ')}]`,
    );
  const t = text.data as Float32Array;
  const im = image.data as Float32Array;
  const out = new Float32Array(b * (lt + q) * d);
  for (let n = 0; n < b; n++) {
    out.set(t.subarray(n * lt * d, (n + 1) * lt * d), n * (lt + q) * d);
    out.set(im.subarray(n * q * d, (n + 1) * q * d), (n * (lt + q) + lt) * d);
  }
  return hostTensor(out, [b, lt + q, d]);
}
