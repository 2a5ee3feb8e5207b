// Peak-memory estimate of a text-to-video run, made from the configs and weight-file sizes alone (no weights
// are loaded), so a request that cannot fit is refused in milliseconds instead of being killed by the kernel
// minutes later. It is an upper-bound sketch, not a profiler: the terms are the ones that grow with the
// request (latent feature maps, the attention score matrices, the VAE decoder's full-resolution maps, the
// decoded frames) plus the weights held twice (the host copy, upcast to float32, and ONNX Runtime's
// initialisers). `LIVE_*` say how many maps of the largest size are alive at once; with BASE_BYTES they were set so the
// estimate stays above the measured peak RSS of the default model (bench/RESULTS.md, "memory guard").
import { totalmem, freemem } from 'node:os';
import { KinemaError } from '../errors.js';
import type { UNet3DConfig } from '../models/unet3d/config.js';
import type { VaeConfig } from '../models/vae/config.js';

const F32 = 4;
const LIVE_UNET_MAPS = 16;
const LIVE_VAE_MAPS = 8;
/** Node, tsx, ONNX Runtime (its sessions and arenas) and the libraries: measured ~160 MiB at start, more once sessions exist. */
const BASE_BYTES = 450 * 2 ** 20;

export interface MemoryRequest {
  unet: Pick<UNet3DConfig, 'blockOutChannels' | 'downBlockTypes' | 'attentionHeadDim' | 'inChannels'>;
  vae: Pick<VaeConfig, 'blockOutChannels'>;
  /** Bytes of all weight files (their float32 size is what the host holds). */
  weightBytes: number;
  /** True when the weight files are fp16/bf16 (they are upcast to float32 at load). */
  halfWeights: boolean;
  width: number;
  height: number;
  /** Frames the UNet sees at once (the chunk size of a long video, whose memory is flat in its length). */
  frames: number;
  /** Frames held decoded at the end (all of them for a normal run; a chunk for a streamed long video). */
  outputFrames: number;
  /** VAE decode batch (frames decoded together). */
  decodeBatch?: number;
}

export interface MemoryEstimate {
  total: number;
  parts: Record<'base' | 'weights' | 'unet' | 'attention' | 'vae' | 'frames', number>;
}

export function estimateRunMemory(r: MemoryRequest): MemoryEstimate {
  const factor = 2 ** (r.vae.blockOutChannels.length - 1);
  const h = Math.ceil(r.height / factor);
  const w = Math.ceil(r.width / factor);
  const batch = 2; // classifier-free guidance runs the unconditional and conditional halves together
  const c0 = Math.max(r.unet.blockOutChannels[0] ?? 0, r.unet.inChannels);
  const unet = batch * r.frames * h * w * c0 * F32 * LIVE_UNET_MAPS;
  // Spatial self-attention scores per transformer level: [B·F, heads, L, L], L = h·w at that level.
  let attention = 0;
  r.unet.downBlockTypes.forEach((type, i) => {
    if (!type.startsWith('CrossAttn')) return;
    const l = Math.ceil(h / 2 ** i) * Math.ceil(w / 2 ** i);
    attention = Math.max(attention, batch * r.frames * r.unet.attentionHeadDim * l * l * F32);
  });
  // Temporal attention: [B·h·w, heads, F, F].
  attention = Math.max(attention, batch * h * w * r.unet.attentionHeadDim * r.frames * r.frames * F32);
  const decodeBatch = Math.min(r.decodeBatch ?? 8, r.outputFrames);
  const cMaxDecoder = Math.max(...r.vae.blockOutChannels);
  const vae = decodeBatch * r.height * r.width * cMaxDecoder * F32 * LIVE_VAE_MAPS;
  // Decoded float frames [F, 3, H, W] plus their RGB24 copies for the writer.
  const frames = r.outputFrames * r.height * r.width * (3 * F32 + 3);
  const weights = r.weightBytes * (r.halfWeights ? 2 : 1) * 2;
  const parts = { base: BASE_BYTES, weights, unet, attention, vae, frames };
  return { total: Object.values(parts).reduce((a, b) => a + b, 0), parts };
}

/** The default --max-memory: 80 % of what the OS reports available (and of a cgroup limit, if any). */
export function defaultMemoryLimit(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  const cap = constrained && constrained > 0 && constrained < totalmem() ? constrained : totalmem();
  return Math.floor(0.8 * Math.min(freemem(), cap));
}

/** Parses `8G`, `512M`, `1.5GiB`, `2000000000` into bytes; throws GENERATE_BAD_OPTION naming the flag. */
export function parseByteSize(text: string, flag = '--max-memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(text);
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[(m?.[2] ?? '').toLowerCase()];
  const n = m ? Number(m[1]) * (unit ?? 1) : NaN;
  if (!m || !(n > 0) || !Number.isFinite(n)) {
    throw new KinemaError(
      'GENERATE_BAD_OPTION',
      `${flag} must be a size such as 8G, 512M or 2000000000, got '${text}'`,
    );
  }
  return Math.floor(n);
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 40) return `${(n / 2 ** 40).toFixed(1)} TiB`;
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  return `${(n / 2 ** 20).toFixed(0)} MiB`;
}

/** Throws GENERATE_OUT_OF_MEMORY (estimate, its largest part, the limit) when the run would not fit. */
export function checkMemory(estimate: MemoryEstimate, limit: number, what: string): void {
  if (estimate.total <= limit) return;
  const [part, bytes] = Object.entries(estimate.parts).sort((a, b) => b[1] - a[1])[0]!;
  throw new KinemaError(
    'GENERATE_OUT_OF_MEMORY',
    `${what} needs an estimated ${formatBytes(estimate.total)} (largest part: ${part}, ${formatBytes(bytes)}), ` +
      `more than the limit of ${formatBytes(limit)}; use fewer frames or a smaller size, ` +
      `or raise --max-memory if the machine really has more`,
  );
}
