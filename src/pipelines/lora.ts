// LoRA adapters on a pipeline: settle a file's module keys against the models (strictly: a key that names no
// layer, or factors of the wrong shape, is an error naming it), then either attach them as branches (the
// unmerged run: y = W·x + s·B·A·x, src/nn/lora.ts) or fold them into the weights (`kinema lora merge`).
// Files are all checked before anything is attached, so a bad second file leaves the pipeline as it was.
import type { Module, StateDict } from '../nn/module.js';
import { isLoRAHost, loraFactorShapes, mergeLoRAWeight } from '../nn/lora.js';
import type { LoRAHost } from '../nn/lora.js';
import { LoRAFileError, readLoRAFile } from '../io/lora_file.js';
import type { LoRAComponent, LoRAFileContents } from '../io/lora_file.js';
import type { FileLoader } from '../io/loader.js';
import type { TextToVideoPipeline } from './text_to_video.js';

/** One file module settled on one layer of a model. */
export interface ResolvedLoRA {
  readonly component: LoRAComponent;
  readonly hostPath: string;
  readonly host: Module & LoRAHost;
  readonly down: Float32Array;
  readonly up: Float32Array;
  readonly rank: number;
  /** λ · α / r. */
  readonly scale: number;
}

export interface LoRASpec {
  readonly path: string;
  /** λ, the user's strength (1 = as trained, 0 = the base model exactly). */
  readonly scale: number;
}

const COMPONENT_NAME: Record<LoRAComponent, string> = { unet: 'UNet', text_encoder: 'text encoder' };

function sameShape(actual: readonly number[], expected: readonly number[], linear: boolean): boolean {
  if (actual.join() === expected.join()) return true;
  // kohya stores factors of SD's 1×1-conv projections as [r, in, 1, 1]; on a Linear layer they are [r, in].
  return (
    linear &&
    actual.length > expected.length &&
    actual.slice(0, expected.length).join() === expected.join() &&
    actual.slice(expected.length).every((d) => d === 1)
  );
}

/** kohya name (module path with '_' for '.') → module path, over the LoRA-capable layers of `root`. */
function kohyaNames(root: Module): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const [path, m] of root.namedModules()) {
    if (!isLoRAHost(m)) continue;
    const name = path.replaceAll('.', '_');
    out.set(name, out.has(name) ? null : path); // null: two paths collapse onto one name (ambiguous)
  }
  return out;
}

/** Every module of `file` on its layer of `roots` (λ = `scale`); throws naming the first key that fits none. */
export function resolveLoRA(
  file: LoRAFileContents,
  roots: Partial<Record<LoRAComponent, Module>>,
  scale: number,
): ResolvedLoRA[] {
  const out: ResolvedLoRA[] = [];
  for (const [component, modules] of file.components) {
    const root = roots[component];
    if (!root)
      throw new LoRAFileError(
        `${file.path}: the file has ${COMPONENT_NAME[component]} weights; the model has none`,
      );
    const byPath = root.namedModules();
    const byKohya = file.layout === 'kohya' ? kohyaNames(root) : null;
    for (const [key, w] of modules) {
      const shown = file.layout === 'kohya' ? `lora_${component === 'unet' ? 'unet' : 'te'}_${key}` : key;
      let hostPath: string | null | undefined;
      if (byKohya) hostPath = byKohya.get(key);
      else hostPath = byPath.has(key) ? key : undefined;
      if (hostPath === null)
        throw new LoRAFileError(
          `${file.path}: kohya key '${shown}' names more than one layer of the ${COMPONENT_NAME[component]}`,
        );
      const host = hostPath === undefined ? undefined : byPath.get(hostPath);
      if (hostPath === undefined || !host || !isLoRAHost(host))
        throw new LoRAFileError(
          `${file.path}: LoRA key '${shown}' matches no linear or conv layer of the ${COMPONENT_NAME[component]}`,
        );
      const expected = loraFactorShapes(host.loraGeometry, w.rank);
      const linear = host.loraGeometry.kind === 'linear';
      if (!sameShape(w.down.shape, expected.a, linear) || !sameShape(w.up.shape, expected.b, linear))
        throw new LoRAFileError(
          `${file.path}: '${shown}': factors [${w.down.shape}] and [${w.up.shape}] do not fit layer ` +
            `'${hostPath}' (rank ${w.rank} needs [${expected.a}] and [${expected.b}])`,
        );
      const alpha = w.alpha ?? w.rank;
      out.push({
        component,
        hostPath,
        host,
        down: w.down.data,
        up: w.up.data,
        rank: w.rank,
        scale: (scale * alpha) / w.rank,
      });
    }
  }
  return out;
}

/** Attaches `resolved` as branches of their layers; returns `sd` plus the branch weights (a new map). */
export function attachResolvedLoRA(sd: StateDict, resolved: readonly ResolvedLoRA[]): StateDict {
  const out: StateDict = new Map(sd);
  for (const r of resolved) {
    const b = r.host.addLoRA(r.rank, r.scale);
    out.set(`${b.path}.lora_A.weight`, r.down);
    out.set(`${b.path}.lora_B.weight`, r.up);
  }
  return out;
}

/** `sd` with every resolved module folded into its layer's weight: W ← W + s·B·A (a new map). */
export function mergeResolvedLoRA(sd: StateDict, resolved: readonly ResolvedLoRA[]): StateDict {
  const out: StateDict = new Map(sd);
  for (const r of resolved) {
    const key = `${r.hostPath}.weight`;
    const w = out.get(key);
    if (!w) throw new LoRAFileError(`LoRA merge: the model has no weight '${key}'`);
    out.set(key, mergeLoRAWeight(w, r.host.loraGeometry, r.down, r.up, r.rank, r.scale));
  }
  return out;
}

/** The pipeline's models as LoRA roots (the UNet and the CLIP text encoder's module). */
export function loraRoots(pipe: TextToVideoPipeline): Record<LoRAComponent, Module> {
  return { unet: pipe.components.unet, text_encoder: pipe.components.textEncoder.module };
}

/** Reads and settles every file against the pipeline (no change to it yet). */
export function resolveLoRAFiles(
  pipe: TextToVideoPipeline,
  specs: readonly LoRASpec[],
  loader?: FileLoader,
): ResolvedLoRA[] {
  const roots = loraRoots(pipe);
  return specs.flatMap((s) => resolveLoRA(readLoRAFile(s.path, loader), roots, s.scale));
}

/**
 * Loads LoRA files onto a pipeline as unmerged branches (PEFT's default), each at its scale λ. With λ = 0 the
 * branches add exactly zero, so the output is the base model's bit for bit.
 */
export function loadLoRAs(
  pipe: TextToVideoPipeline,
  specs: readonly LoRASpec[],
  loader?: FileLoader,
): ResolvedLoRA[] {
  const resolved = resolveLoRAFiles(pipe, specs, loader);
  const { unet, textEncoder } = pipe.components;
  const ofUnet = resolved.filter((r) => r.component === 'unet');
  const ofText = resolved.filter((r) => r.component === 'text_encoder');
  if (ofUnet.length > 0) unet.loadWeights(attachResolvedLoRA(unet.stateDict, ofUnet));
  if (ofText.length > 0)
    pipe.components.textEncoder = textEncoder.withStateDict(
      attachResolvedLoRA(textEncoder.stateDict, ofText),
    );
  pipe.clearCompiled();
  return resolved;
}
