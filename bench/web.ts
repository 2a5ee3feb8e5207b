// `npm run bench:web`: the default model's generation in headless chromium (onnxruntime-web, WASM with threads;
// WebGPU when chromium offers an adapter and --webgpu is given) against onnxruntime-node's CPU provider in the
// same run, with the same prompt, seed, steps and frames. ms per UNet step is the mean over steps 2..N (step 1
// also creates the session) on both sides; "whole run" is pipeline construction + encode + denoise + decode
// (the page's figure excludes the download, which the bundle/model sizes below describe).
import type { AddressInfo } from 'node:net';
import { buildWeb } from '../scripts/build_web.js';
import { serveWeb } from '../scripts/serve_web.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { CHROMIUM_FLAGS, launch, runPage } from '../test/web/browser_harness.js';

const args = process.argv.slice(2);
const opt = (name: string, fallback: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const steps = opt('--steps', 4);
const frames = opt('--frames', 16);
const seed = 7;
const prompt = 'a red circle moves left on a blue background';

async function nodeRun(): Promise<{ msPerStep: number; wholeMs: number }> {
  const t0 = performance.now();
  const pipe = await TextToVideoPipeline.fromPretrained('models/default');
  const stepMs: number[] = [];
  let last = t0;
  for await (const e of pipe.generate({
    prompt,
    seed,
    numInferenceSteps: steps,
    numFrames: frames,
    height: 64,
    width: 64,
    guidanceScale: 9,
    fps: 8,
  })) {
    const now = performance.now();
    if (e.kind === 'encoded') last = now;
    if (e.kind === 'step') {
      stepMs.push(now - last);
      last = now;
    }
  }
  const steady = stepMs.length > 1 ? stepMs.slice(1) : stepMs;
  return { msPerStep: steady.reduce((a, b) => a + b, 0) / steady.length, wholeMs: performance.now() - t0 };
}

const build = await buildWeb();
const server = await serveWeb({ port: 0 });
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
const query = `autorun=1&prompt=${encodeURIComponent(prompt)}&seed=${seed}&steps=${steps}&frames=${frames}`;
const rows: string[] = [];
try {
  const browser = await launch(
    args.includes('--webgpu')
      ? [...CHROMIUM_FLAGS.filter((f) => f !== '--disable-gpu'), '--enable-unsafe-webgpu']
      : CHROMIUM_FLAGS,
  );
  for (const backend of args.includes('--webgpu') ? ['wasm', 'webgpu'] : ['wasm']) {
    const page = await browser.newPage();
    const r = await runPage(page, `${url}?${query}&backend=${backend}`, 1_800_000);
    if (r.state !== 'done') throw new Error(`${backend}: ${JSON.stringify(r.error)}`);
    const whole = await page.evaluate(
      () =>
        (
          globalThis as unknown as {
            document: { getElementById(id: string): { textContent: string | null } | null };
          }
        ).document.getElementById('total')!.textContent,
    );
    const detail = await page.evaluate(
      () =>
        (
          globalThis as unknown as {
            document: { getElementById(id: string): { textContent: string | null } | null };
          }
        ).document.getElementById('backend-used')!.textContent,
    );
    rows.push(`| chromium, onnxruntime-web, ${detail} | ${r.msPerStep.toFixed(0)} | ${whole} |`);
    const shot = args.indexOf('--screenshot');
    if (shot >= 0 && backend === 'wasm') await page.screenshot({ path: args[shot + 1]!, fullPage: true });
    await page.close();
  }
  await browser.close();
} finally {
  server.close();
}
const n = await nodeRun();
rows.push(
  `| Node, onnxruntime-node CPU provider | ${n.msPerStep.toFixed(0)} | ${(n.wholeMs / 1000).toFixed(1)} s |`,
);
console.log(`${frames} frames × 64×64, ${steps} DDIM steps, guidance 9, seed ${seed}\n`);
console.log('| runtime | ms per UNet step (guidance pair) | whole run |\n|---|---|---|');
for (const r of rows) console.log(r);
const kib = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
console.log(
  `\nbundles: ${Object.entries(build.bundles)
    .map(([k, v]) => `${k} ${kib(v)}`)
    .join(', ')}; onnxruntime-web files ${kib(build.ortBytes)}; model download ${kib(build.modelBytes)}`,
);
