// streaming/config.json: the StreamingT2V adapters' architecture (Henschel et al. 2024, §4.1–4.2), next to the
// base UNet3D they adapt. Sizes that follow from the base (channels, text width) are not repeated here.
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { KinemaError } from '../../errors.js';

/**
 * The fingerprint of the base UNet the adapters were trained on (SHA-256 of its weights file), stored as
 * `base_unet_sha256`: adapters are a delta on one set of weights and mean nothing on another.
 */
export function baseFingerprint(unetWeightsFile: Uint8Array): string {
  return bytesToHex(sha256(unetWeightsFile));
}

export interface StreamingConfig {
  /** F_cond: conditioning frames, the last frames of the previous chunk (8 in the release). */
  readonly condFrames: number;
  /**
   * Channels of the CAM's frame encoder E_cond, one per resolution: its first conv works at the frame
   * resolution, each next entry halves it, so length − 1 = log2(VAE factor) brings frames to the latents' size.
   */
  readonly condEmbeddingChannels: readonly number[];
  /** Heads of the temporal attention of each skip-connection merger. */
  readonly mergerHeads: number;
  /** Width of the pooled CLIP image embedding of the anchor frame (the image encoder's projection). */
  readonly imageEmbedDim: number;
  /** Image tokens the APM makes from that embedding (16 in the release). */
  readonly imageTokens: number;
  /** Text tokens of the prompt embedding (77, CLIP's context length). */
  readonly textTokens: number;
}

export const DEFAULT_STREAMING_CONFIG: StreamingConfig = {
  condFrames: 8,
  condEmbeddingChannels: [16, 32, 64],
  mergerHeads: 4,
  imageEmbedDim: 64,
  imageTokens: 16,
  textTokens: 77,
};

function fail(message: string): never {
  throw new KinemaError('STREAMING_BAD_CONFIG', message);
}

function positiveInt(cfg: Record<string, unknown>, key: string, dflt: number, where: string): number {
  const v = cfg[key] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    fail(`${where}: "${key}" must be a positive integer, got ${JSON.stringify(cfg[key])}`);
  return v;
}

/** streaming/config.json (snake_case) → a checked config; absent keys take the defaults above. */
export function parseStreamingConfig(
  cfg: Record<string, unknown>,
  where = 'streaming/config.json',
): StreamingConfig {
  const d = DEFAULT_STREAMING_CONFIG;
  const channels = cfg['cond_embedding_channels'] ?? [...d.condEmbeddingChannels];
  if (
    !Array.isArray(channels) ||
    channels.length === 0 ||
    !channels.every((c) => typeof c === 'number' && Number.isInteger(c) && c >= 1)
  )
    fail(`${where}: "cond_embedding_channels" must be a non-empty list of positive integers`);
  return {
    condFrames: positiveInt(cfg, 'cond_frames', d.condFrames, where),
    condEmbeddingChannels: channels as number[],
    mergerHeads: positiveInt(cfg, 'merger_heads', d.mergerHeads, where),
    imageEmbedDim: positiveInt(cfg, 'image_embed_dim', d.imageEmbedDim, where),
    imageTokens: positiveInt(cfg, 'image_tokens', d.imageTokens, where),
    textTokens: positiveInt(cfg, 'text_tokens', d.textTokens, where),
  };
}

/** The config as written to streaming/config.json. */
export function streamingConfigJson(c: StreamingConfig): Record<string, unknown> {
  return {
    _class_name: 'StreamingT2VAdapters',
    cond_frames: c.condFrames,
    cond_embedding_channels: [...c.condEmbeddingChannels],
    merger_heads: c.mergerHeads,
    image_embed_dim: c.imageEmbedDim,
    image_tokens: c.imageTokens,
    text_tokens: c.textTokens,
  };
}
