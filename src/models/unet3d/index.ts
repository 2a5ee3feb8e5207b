export * from './config.js';
export * from './embeddings.js';
export * from './resnet.js';
export * from './transformer.js';
export * from './blocks.js';
export * from './unet3d.js';
