export * from './config.js';
export * from './cam.js';
export * from './apm.js';
export * from './streaming_unet.js';
