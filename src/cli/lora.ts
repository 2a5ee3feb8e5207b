// `kinema lora merge BASE FILE[:SCALE]… -o DIR`: a model folder whose UNet (and text encoder, when a file has
// one) carries the LoRA folded into its weights, W ← W + λ·(α/r)·B·A, stored fp16 like the shipped models.
// The output is assembled in a hidden temporary folder next to DIR and renamed when complete; an existing DIR
// is refused, so nothing the user had is replaced.
import { cpSync, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { TextToVideoPipeline } from '../pipelines/text_to_video.js';
import { mergeResolvedLoRA, resolveLoRAFiles } from '../pipelines/lora.js';
import type { LoRASpec } from '../pipelines/lora.js';
import { parseLoRASpec } from '../io/lora_file.js';
import { readConfig } from '../io/model_folder.js';
import { joinPath as join } from '../io/loader.js';
import { commitTemp, removeTemp, tempPathFor } from '../io/video/atomic.js';
import { exportComponent, writeJsonAtomic } from '../training/export.js';
import { KinemaError } from '../errors.js';

/** Refuses a missing or non-file LoRA path before any weight is loaded. */
export function checkLoRAFiles(specs: readonly LoRASpec[]): void {
  for (const s of specs) {
    if (!existsSync(s.path)) throw new KinemaError('LORA_BAD_FILE', `--lora ${s.path}: no such file`);
    if (!statSync(s.path).isFile()) throw new KinemaError('LORA_BAD_FILE', `--lora ${s.path}: not a file`);
  }
}

const UNET_FOLDERS = ['unet', 'unet3d'];

/** Writes `out`: `base` with every LoRA merged at its scale. */
export async function mergeLoRAs(base: string, specs: readonly LoRASpec[], out: string): Promise<void> {
  if (specs.length === 0) throw new KinemaError('LORA_BAD_OPTION', 'lora merge: give at least one LoRA file');
  checkLoRAFiles(specs);
  if (existsSync(out))
    throw new KinemaError('OUTPUT_NOT_WRITABLE', `lora merge: ${out} exists; choose a new folder`);
  if (resolve(out) === resolve(base))
    throw new KinemaError('OUTPUT_NOT_WRITABLE', 'lora merge: -o is the base folder');
  const pipe = await TextToVideoPipeline.fromPretrained(base);
  const resolved = resolveLoRAFiles(pipe, specs);
  const temp = tempPathFor(resolve(out));
  try {
    cpSync(base, temp, { recursive: true });
    const ofUnet = resolved.filter((r) => r.component === 'unet');
    const ofText = resolved.filter((r) => r.component === 'text_encoder');
    const { unet, textEncoder } = pipe.components;
    if (ofUnet.length > 0) {
      const folder = UNET_FOLDERS.find((n) => existsSync(join(base, n)))!;
      exportComponent(join(temp, folder), {
        config: readConfig(join(base, folder)),
        stateDict: mergeResolvedLoRA(unet.stateDict, ofUnet),
        module: unet,
        weightsBasename: 'diffusion_pytorch_model',
      });
    }
    if (ofText.length > 0) {
      exportComponent(join(temp, 'text_encoder'), {
        config: readConfig(join(base, 'text_encoder')),
        stateDict: mergeResolvedLoRA(textEncoder.stateDict, ofText),
        module: textEncoder.module,
        weightsBasename: 'model',
      });
    }
    writeJsonAtomic(join(temp, 'merged_loras.json'), {
      base: resolve(base),
      loras: specs.map((s) => ({ file: resolve(s.path), scale: s.scale })),
      modules: { unet: ofUnet.length, text_encoder: ofText.length },
    });
    await commitTemp(temp, resolve(out), true);
  } catch (err) {
    await removeTemp(temp);
    throw err;
  }
}

export function loraCommand(): Command {
  const lora = new Command('lora').description('LoRA adapters: merge into a model folder');
  lora
    .command('merge')
    .description('write a model folder with LoRA adapters folded into its weights (fp16)')
    .argument('<base>', 'diffusers-layout model folder')
    .argument('<loras...>', 'LoRA files, each FILE or FILE:SCALE (default scale 1)')
    .requiredOption('-o, --output <dir>', 'new model folder (must not exist)')
    .action(async (base: string, loras: string[], flags: { output: string }) => {
      await mergeLoRAs(base, loras.map(parseLoRASpec), flags.output);
      process.stderr.write(`wrote ${flags.output}\n`);
    });
  return lora;
}
