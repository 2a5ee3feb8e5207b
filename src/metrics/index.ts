// Video quality metrics: dense optical flow, MAWE, flow smoothness, SCuts, FVD and CLIP-based scores.
// See docs/metrics.md for the exact definitions.
export * from './image_ops.js';
export * from './optical_flow.js';
export * from './raft.js';
export * from './mawe.js';
export * from './smoothness.js';
export * from './scenecuts.js';
export * from './fvd.js';
export * from './clip_metrics.js';
