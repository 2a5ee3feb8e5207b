// The generation worker: fetches (or takes from the cache) the model folder, picks the ONNX Runtime backend,
// runs the same TextToVideoPipeline as `kinema generate`, and posts progress, previews and the result to the
// page, so the page stays responsive while the UNet runs.
import { configureWebRuntime } from '../../../src/engine/ort_backend.web.js';
import type { ExecutionProvider } from '../../../src/engine/runtime.js';
import { KinemaError, isKinemaError } from '../../../src/errors.js';
import { fetchModelFolder } from '../../../src/io/fetch_loader.js';
import type { ResponseCache } from '../../../src/io/fetch_loader.js';
import { TextToVideoPipeline } from '../../../src/pipelines/text_to_video.js';
import type { HostTensor } from '../../../src/engine/runtime.js';
import { encodePngs, encodeVideo } from './encode.js';
import { DEFAULTS, checkSettings } from './protocol.js';
import type { FromWorker, Preview, RunSettings, ToWorker } from './protocol.js';

const scope = self as unknown as {
  postMessage(m: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
  crossOriginIsolated: boolean;
  location: Location;
};
const post = (m: FromWorker): void => scope.postMessage(m);

interface GpuLike {
  requestAdapter(): Promise<{ info?: { vendor?: string; architecture?: string } } | null>;
}

/** WebGPU when an adapter is offered (unless 'wasm' is asked for), else WebAssembly with threads. */
async function chooseBackend(
  choice: RunSettings['backend'],
): Promise<{ ep: ExecutionProvider; detail: string }> {
  if (choice !== 'wasm') {
    const gpu = (navigator as unknown as { gpu?: GpuLike }).gpu;
    const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
    if (adapter) {
      const info = adapter.info;
      return {
        ep: 'webgpu',
        detail: `WebGPU (${[info?.vendor, info?.architecture].filter(Boolean).join(' ') || 'adapter'})`,
      };
    }
    if (choice === 'webgpu')
      throw new KinemaError(
        'NO_WEBGPU',
        'WebGPU was asked for (backend=webgpu), but this browser offers no WebGPU adapter. Use backend=auto or wasm.',
      );
  }
  if (typeof WebAssembly !== 'object')
    throw new KinemaError(
      'NO_WASM',
      'This browser has neither WebGPU nor WebAssembly; it cannot run the model.',
    );
  if (!scope.crossOriginIsolated || typeof SharedArrayBuffer === 'undefined')
    throw new KinemaError(
      'NO_WASM_THREADS',
      'This browser offers neither WebGPU nor WebAssembly threads (threads need a cross-origin isolated page: ' +
        'serve it with npm run web, which sends the COOP/COEP headers). Generation would be too slow to try.',
    );
  const threads = Math.max(1, Math.min(8, navigator.hardwareConcurrency || 1));
  configureWebRuntime({ numThreads: threads });
  return { ep: 'wasm', detail: `WebAssembly (SIMD, ${threads} thread${threads === 1 ? '' : 's'})` };
}

/** Latent channels 0–2 as RGB, each frame h×w, side by side (a cheap look at the denoising, no VAE run). */
function latentPreview(latents: HostTensor): Preview {
  const [, c, f, h, w] = latents.shape as [number, number, number, number, number];
  const d = latents.data as Float32Array;
  const width = f * w;
  const rgba = new Uint8ClampedArray(width * h * 4);
  for (let fi = 0; fi < f; fi++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const o = (y * width + fi * w + x) * 4;
        for (let ch = 0; ch < 3; ch++)
          rgba[o + ch] = 128 + 64 * d[((Math.min(ch, c - 1) * f + fi) * h + y) * w + x]!;
        rgba[o + 3] = 255;
      }
  return { width, height: h, rgba };
}

async function openCache(): Promise<ResponseCache | undefined> {
  if (typeof caches === 'undefined') return undefined;
  try {
    return await caches.open('kinema-model-v1');
  } catch {
    return undefined; // e.g. storage disabled: download every time
  }
}

async function run(s: RunSettings): Promise<void> {
  const bad = checkSettings(s);
  if (bad) throw new KinemaError(bad.code, bad.message);
  configureWebRuntime({ wasmPaths: new URL('./ort/', scope.location.href).href });
  const backend = await chooseBackend(s.backend);
  post({ type: 'backend', backend: backend.ep, detail: backend.detail });
  post({ type: 'status', text: 'Loading the model…' });
  const cache = await openCache();
  const model = await fetchModelFolder(s.modelUrl, {
    ...(cache && { cache }),
    onProgress: (progress) => post({ type: 'download', progress }),
  });
  post({ type: 'status', text: 'Compiling the model…' });
  const started = performance.now(); // the whole run: building the pipeline, encoding, denoising, decoding
  const pipe = await TextToVideoPipeline.fromPretrained(model.root, { loader: model.loader, ep: backend.ep });
  let last = started;
  const stepMs: number[] = [];
  for await (const e of pipe.generate({
    prompt: s.prompt,
    negativePrompt: '',
    numFrames: s.frames,
    height: DEFAULTS.height,
    width: DEFAULTS.width,
    numInferenceSteps: s.steps,
    guidanceScale: DEFAULTS.guidance,
    seed: s.seed,
    fps: DEFAULTS.fps,
  })) {
    const now = performance.now();
    if (e.kind === 'encoded') {
      post({ type: 'status', text: 'Denoising…' });
      last = now;
    } else if (e.kind === 'step') {
      stepMs.push(now - last);
      last = now;
      post({
        type: 'step',
        index: e.index,
        total: e.total,
        ms: stepMs.at(-1)!,
        preview: latentPreview(e.latents),
      });
    } else if (e.kind === 'decoded') {
      post({ type: 'status', text: 'Encoding the video…' });
    } else if (e.kind === 'done') {
      // The first step also creates the UNet session; ms per step is the mean of the others when there are any.
      const steady = stepMs.length > 1 ? stepMs.slice(1) : stepMs;
      const msPerStep = steady.reduce((a, b) => a + b, 0) / steady.length;
      const video = await encodeVideo(e.frames, e.width, e.height, DEFAULTS.fps).catch(() => null);
      const pngs = video ? [] : await encodePngs(e.frames, e.width, e.height);
      post({
        type: 'done',
        result: {
          frames: e.frames,
          width: e.width,
          height: e.height,
          backend: backend.ep,
          msPerStep,
          totalMs: performance.now() - started,
          video,
          pngs,
        },
      });
    }
  }
}

scope.onmessage = (e) => {
  if (e.data.type !== 'run') return;
  run(e.data.settings).catch((err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    post({ type: 'error', code: isKinemaError(err) ? err.code : 'GENERATION_FAILED', message });
  });
};
