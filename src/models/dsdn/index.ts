export * from './motion.js';
export * from './interaction.js';
export * from './dual_stream_unet.js';
