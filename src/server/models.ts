// Models by id: the folders with a model_index.json directly inside the model roots (the repo's models/ and
// <data>/models). A request names a model by id only; the id is matched against this list, never joined onto a
// path from the request, so `../../etc` cannot reach the file system. Loaded pipelines are pooled per model:
// a pipeline's scheduler is stateful, so each concurrently running job takes its own instance.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TextToVideoPipeline } from '../pipelines/text_to_video.js';
import type { ModelDefaults } from './job_params.js';
import { pipelineClass } from '../pipelines/model_index.js';

export const REPO_MODELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../models');
export const DEFAULT_MODEL_ID = 'default';

export interface ModelEntry {
  id: string;
  dir: string;
  defaults: ModelDefaults;
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch {
    return {};
  }
}

/** The size the UNet was configured for (sample_size × the VAE's factor), else 256; 16 frames, 25 steps. */
function modelDefaults(dir: string): ModelDefaults {
  const unet = readJson(join(dir, 'unet', 'config.json'));
  const vae = readJson(join(dir, 'vae', 'config.json'));
  const blocks = Array.isArray(vae['block_out_channels']) ? vae['block_out_channels'].length : 4;
  const sample = typeof unet['sample_size'] === 'number' ? unet['sample_size'] : 32;
  const side = sample * 2 ** (blocks - 1);
  return { width: side, height: side, frames: 16, steps: 25, fps: 8 };
}

/** Folders whose pipeline the job runner implements (single-stream text-to-video). */
function servable(dir: string): boolean {
  return pipelineClass(readJson(join(dir, 'model_index.json'))) === 'TextToVideoSDPipeline';
}

export class ModelRegistry {
  constructor(readonly roots: readonly string[]) {}

  /** Every model id in the roots (first root wins on a clash), sorted. */
  list(): ModelEntry[] {
    const seen = new Map<string, ModelEntry>();
    for (const root of this.roots) {
      if (!existsSync(root)) continue;
      for (const ent of readdirSync(root, { withFileTypes: true })) {
        if (!ent.isDirectory() || seen.has(ent.name)) continue;
        const dir = join(root, ent.name);
        // DSDN dual-stream folders (models/dsdn) are served by `kinema generate` only, not by the job runner yet.
        if (existsSync(join(dir, 'model_index.json')) && servable(dir))
          seen.set(ent.name, { id: ent.name, dir, defaults: modelDefaults(dir) });
      }
    }
    return [...seen.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  find(id: string): ModelEntry | undefined {
    return this.list().find((m) => m.id === id);
  }
}

/** Loaded pipelines per model folder; `acquire` hands out an idle one or loads a new one. */
export class PipelinePool {
  private readonly idle = new Map<string, TextToVideoPipeline[]>();

  async acquire(dir: string): Promise<TextToVideoPipeline> {
    const free = this.idle.get(dir);
    if (free && free.length > 0) return free.pop()!;
    return TextToVideoPipeline.fromPretrained(dir);
  }

  release(dir: string, pipe: TextToVideoPipeline): void {
    const free = this.idle.get(dir) ?? [];
    free.push(pipe);
    this.idle.set(dir, free);
  }
}
