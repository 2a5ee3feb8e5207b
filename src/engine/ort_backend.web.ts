// The runtime backend in a browser: onnxruntime-web (WebGPU through JSEP, or WebAssembly with SIMD and, when the
// page is cross-origin isolated, threads). scripts/build_web.ts swaps this file in for ort_backend.ts, so the
// engine above it is the same code in both places.
import { sha256 as sha256Hash } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as ort from 'onnxruntime-web';
import { KinemaError } from '../errors.js';
import type { OrtBackend } from './backend.js';

const encoder = new TextEncoder();

export const ortBackend: OrtBackend = {
  name: 'onnxruntime-web',
  InferenceSession: ort.InferenceSession,
  Tensor: ort.Tensor,
  defaultEp: 'wasm',
  sha256() {
    const h = sha256Hash.create();
    return {
      update: (d) => void h.update(typeof d === 'string' ? encoder.encode(d) : d),
      digestHex: () => bytesToHex(h.digest()),
    };
  },
  // onnxruntime-web 1.30's WebGPU (JSEP) SkipLayerNormalization kernel rejects the fused LayerNorm + Add that
  // the 'extended' optimizations make of our graphs ("Beta must be 1D"), so WebGPU sessions stop at 'basic'.
  optimizationLevel: (ep) => (ep === 'webgpu' ? 'basic' : 'all'),
  profilePrefix: () => undefined,
  createWithExternalData() {
    return Promise.reject(
      new KinemaError(
        'BROWSER_MODEL_TOO_LARGE',
        'this model needs its weights in a side file (over ~1.5 GB), which the browser runtime does not support',
      ),
    );
  },
};

/** onnxruntime-web's settings: where its .wasm files are served, and the WebAssembly thread count. */
export function configureWebRuntime(o: { wasmPaths?: string; numThreads?: number }): void {
  if (o.wasmPaths !== undefined) ort.env.wasm.wasmPaths = o.wasmPaths;
  if (o.numThreads !== undefined) ort.env.wasm.numThreads = o.numThreads;
}
