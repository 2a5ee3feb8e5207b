// The tiny configuration of the StreamingT2V release-layout fixture (test/fixtures/streaming/): a ModelScope-
// style UNet3D without FPS conditioning (as the release's base) and adapters sized for it.
import type { StreamingConfig } from '../../../src/models/streaming/config.js';

export const RELEASE_FIXTURE_UNET = {
  _class_name: 'UNet3DConditionModel',
  attention_head_dim: 4,
  block_out_channels: [8, 16],
  cross_attention_dim: 32,
  down_block_types: ['CrossAttnDownBlock3D', 'DownBlock3D'],
  up_block_types: ['UpBlock3D', 'CrossAttnUpBlock3D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  sample_size: 8,
};

export const RELEASE_FIXTURE_CONFIG: StreamingConfig = {
  condFrames: 2,
  condEmbeddingChannels: [4, 8],
  mergerHeads: 2,
  imageEmbedDim: 6,
  imageTokens: 3,
  textTokens: 77,
};
