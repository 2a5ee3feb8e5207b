// The runtime backend in Node: onnxruntime-node (CPU, WebGPU through Dawn, CUDA when installed). The browser
// bundle replaces this file by ort_backend.web.ts (scripts/build_web.ts).
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { OrtBackend } from './backend.js';

export const ortBackend: OrtBackend = {
  name: 'onnxruntime-node',
  InferenceSession: ort.InferenceSession,
  Tensor: ort.Tensor,
  defaultEp: 'cpu',
  sha256() {
    const h = createHash('sha256');
    return { update: (d) => void h.update(d), digestHex: () => h.digest('hex') };
  },
  optimizationLevel: () => 'all',
  profilePrefix: () => process.env['KINEMA_ORT_PROFILE'] || undefined,
  async createWithExternalData(emit, so) {
    const dir = mkdtempSync(join(tmpdir(), 'kinema-onnx-'));
    try {
      const fd = openSync(join(dir, 'weights.bin'), 'w');
      let offset = 0;
      let bytes: Uint8Array;
      try {
        bytes = emit((b) => {
          const at = offset;
          for (let done = 0; done < b.length;)
            done += writeSync(fd, b, done, Math.min(b.length - done, 1 << 30), at + done);
          offset += b.length;
          const padTo = Math.ceil(offset / 64) * 64; // keep each tensor 64-byte aligned
          if (padTo > offset) writeSync(fd, new Uint8Array(padTo - offset), 0, padTo - offset, offset);
          offset = padTo;
          return at;
        });
      } finally {
        closeSync(fd);
      }
      const modelPath = join(dir, 'model.onnx');
      writeFileSync(modelPath, bytes);
      return await ort.InferenceSession.create(modelPath, so);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
