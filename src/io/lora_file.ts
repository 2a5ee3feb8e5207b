// LoRA adapter files in the two layouts people share (safetensors either way):
//  - diffusers / PEFT: `unet.<module path>.lora_A.weight` (down, [r, in…]) and `.lora_B.weight` (up, [out, r…]),
//    `text_encoder.` for the text encoder; PEFT's own save of a bare model has no component prefix (read as
//    the UNet) or `base_model.model.`; an optional `<module path>.alpha` scalar.
//  - kohya / A1111: `lora_unet_<module path with '_' for '.'>.lora_down.weight`, `.lora_up.weight`, `.alpha`;
//    `lora_te_` for the text encoder.
// The reader only groups tensors by module; which layer a module key names is settled against the model
// (src/pipelines/lora.ts), where kohya's underscores are mapped back through the model's own module paths.
// Scale rule (PEFT's): s = λ · α / r with α = r where the file has none.
import { SafetensorsFile, writeSafetensors } from './safetensors.js';
import type { TensorToWrite } from './safetensors.js';
import { f32ToF16 } from './half.js';
import type { FileLoader } from './loader.js';
import { KinemaError } from '../errors.js';

export type LoRAComponent = 'unet' | 'text_encoder';
export type LoRALayout = 'peft' | 'kohya';

export class LoRAFileError extends KinemaError {
  constructor(message: string) {
    super('LORA_BAD_FILE', message);
    this.name = 'LoRAFileError';
  }
}

export interface LoRAModuleWeights {
  /** The key stem as the file spells it (for error messages). */
  readonly fileKey: string;
  /** A / lora_down [r, in, …kernel] and B / lora_up [out, r, …1]. */
  readonly down: { readonly data: Float32Array; readonly shape: readonly number[] };
  readonly up: { readonly data: Float32Array; readonly shape: readonly number[] };
  readonly alpha: number | null;
  readonly rank: number;
}

export interface LoRAFileContents {
  readonly path: string;
  readonly layout: LoRALayout;
  /** Per component, module key (dotted path for PEFT, underscored name for kohya) → its factors. */
  readonly components: ReadonlyMap<LoRAComponent, ReadonlyMap<string, LoRAModuleWeights>>;
  readonly metadata: Readonly<Record<string, string>>;
}

const KOHYA_PREFIX: Record<string, LoRAComponent> = { lora_unet_: 'unet', lora_te_: 'text_encoder' };
const PEFT_PREFIX: Record<string, LoRAComponent> = { 'unet.': 'unet', 'text_encoder.': 'text_encoder' };
const PEFT_ROLE = { '.lora_A.weight': 'down', '.lora_B.weight': 'up', '.alpha': 'alpha' } as const;
const KOHYA_ROLE = { '.lora_down.weight': 'down', '.lora_up.weight': 'up', '.alpha': 'alpha' } as const;

type Role = 'down' | 'up' | 'alpha';

function splitKey(key: string): { layout: LoRALayout; component: LoRAComponent; stem: string; role: Role } {
  for (const [prefix, component] of Object.entries(KOHYA_PREFIX)) {
    if (!key.startsWith(prefix)) continue;
    for (const [suffix, role] of Object.entries(KOHYA_ROLE))
      if (key.endsWith(suffix))
        return { layout: 'kohya', component, stem: key.slice(prefix.length, -suffix.length), role };
    throw new LoRAFileError(`key '${key}' is neither .lora_down.weight, .lora_up.weight nor .alpha`);
  }
  for (const [suffix, role] of Object.entries(PEFT_ROLE)) {
    if (!key.endsWith(suffix)) continue;
    let rest = key.slice(0, -suffix.length);
    if (rest.startsWith('base_model.model.')) rest = rest.slice('base_model.model.'.length);
    for (const [prefix, component] of Object.entries(PEFT_PREFIX))
      if (rest.startsWith(prefix))
        return { layout: 'peft', component, stem: rest.slice(prefix.length), role };
    return { layout: 'peft', component: 'unet', stem: rest, role };
  }
  throw new LoRAFileError(
    `key '${key}' is not a LoRA weight (expected <module>.lora_A.weight / .lora_B.weight / .alpha, or kohya's ` +
      `lora_unet_… / lora_te_… .lora_down.weight / .lora_up.weight / .alpha)`,
  );
}

/** Reads and groups a LoRA file's tensors (float32); every key must be a LoRA factor or alpha of a pair. */
export function readLoRAFile(path: string, loader?: FileLoader): LoRAFileContents {
  const file = SafetensorsFile.open(path, loader);
  try {
    const names = file.names();
    if (names.length === 0) throw new LoRAFileError(`${path}: the file holds no tensors`);
    type Partial = { down?: LoRAModuleWeights['down']; up?: LoRAModuleWeights['up']; alpha?: number };
    const groups = new Map<LoRAComponent, Map<string, Partial>>();
    const layouts = new Set<LoRALayout>();
    for (const name of names) {
      let parts: ReturnType<typeof splitKey>;
      try {
        parts = splitKey(name);
      } catch (e) {
        throw new LoRAFileError(`${path}: ${(e as Error).message}`);
      }
      layouts.add(parts.layout);
      const { shape } = file.info(name);
      const data = file.readFloat32(name);
      let byModule = groups.get(parts.component);
      if (!byModule) groups.set(parts.component, (byModule = new Map()));
      const entry = byModule.get(parts.stem) ?? {};
      byModule.set(parts.stem, entry);
      if (parts.role === 'alpha') {
        if (data.length !== 1 || !Number.isFinite(data[0]!) || data[0]! <= 0)
          throw new LoRAFileError(`${path}: '${name}' must be one positive number, got [${shape}]`);
        entry.alpha = data[0]!;
      } else {
        if (shape.length < 2)
          throw new LoRAFileError(
            `${path}: '${name}' has shape [${shape}]; a LoRA factor has 2 or more axes`,
          );
        entry[parts.role] = { data, shape };
      }
    }
    if (layouts.size > 1)
      throw new LoRAFileError(`${path}: the file mixes the PEFT and kohya layouts; convert it to one`);
    const components = new Map<LoRAComponent, Map<string, LoRAModuleWeights>>();
    for (const [component, byModule] of groups) {
      const out = new Map<string, LoRAModuleWeights>();
      for (const [stem, e] of byModule) {
        if (!e.down || !e.up)
          throw new LoRAFileError(
            `${path}: module '${stem}' (${component}) has ${e.down ? 'a down' : 'an up'} factor but no ${e.down ? 'up' : 'down'} factor`,
          );
        const rank = e.down.shape[0]!;
        if (e.up.shape[1] !== rank)
          throw new LoRAFileError(
            `${path}: module '${stem}': down [${e.down.shape}] and up [${e.up.shape}] disagree on the rank`,
          );
        // kohya's trainers always write `.alpha` (its scale is alpha/rank, with alpha often ≠ rank): without it the
        // strength cannot be known, so it is refused; PEFT keeps alpha in adapter_config.json, so α = r there.
        if (layouts.has('kohya') && e.alpha === undefined)
          throw new LoRAFileError(
            `${path}: kohya module '${component === 'unet' ? 'lora_unet_' : 'lora_te_'}${stem}' has no '.alpha' (kohya files carry one per module; the scale alpha/rank is unknown without it)`,
          );
        out.set(stem, { fileKey: stem, down: e.down, up: e.up, alpha: e.alpha ?? null, rank });
      }
      components.set(component, out);
    }
    return { path, layout: [...layouts][0]!, components, metadata: file.metadata };
  } finally {
    file.close();
  }
}

/** `FILE[:SCALE]` as the CLI takes it (a Windows drive letter's colon is not a scale). */
export function parseLoRASpec(spec: string): { path: string; scale: number } {
  const m = /^(.*):([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)$/i.exec(spec);
  if (!m) return { path: spec, scale: 1 };
  const scale = Number(m[2]);
  if (!Number.isFinite(scale))
    throw new KinemaError('LORA_BAD_OPTION', `--lora ${spec}: the scale after ':' must be a number`);
  return { path: m[1]!, scale };
}

/** One trained adapter module: its layer's path and the factors (A [r, in…], B [out, r…]). */
export interface AdapterModule {
  readonly component: LoRAComponent;
  readonly hostPath: string;
  readonly down: { readonly data: Float32Array; readonly shape: readonly number[] };
  readonly up: { readonly data: Float32Array; readonly shape: readonly number[] };
}

/** Writes an adapter in the diffusers/PEFT layout (`unet.<path>.lora_A.weight`, …), fp16, atomically. */
export function saveLoRAFile(
  path: string,
  modules: readonly AdapterModule[],
  metadata: Record<string, string> = {},
): void {
  const tensors = new Map<string, TensorToWrite>();
  for (const m of modules) {
    const stem = `${m.component}.${m.hostPath}`;
    tensors.set(`${stem}.lora_A.weight`, { dtype: 'F16', shape: m.down.shape, data: f32ToF16(m.down.data) });
    tensors.set(`${stem}.lora_B.weight`, { dtype: 'F16', shape: m.up.shape, data: f32ToF16(m.up.data) });
  }
  writeSafetensors(path, tensors, { format: 'pt', ...metadata });
}
