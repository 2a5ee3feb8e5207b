// `npm run eval:vidrd`: VidRD's ablation on the default model, one table, every row in the same run with the
// same prompts and seeds: naive continuation, +FNR, +FNR+PNS, +FNR+PNS+DSG, and the full mode decoded by the
// temporal VAE decoder (the same latents as the row above, re-decoded chunk by chunk with the same context).
// Prompts are captions of the world's held-out split. Metrics (src/metrics, docs/metrics.md): SCuts
// (AdaptiveDetector), MAWE and flow smoothness (Farnebäck at the videos' native 64×64, not MAWE's 720×720
// resize, to fit the time budget), CLIP frame consistency (with --clip <CLIPModel folder>), and the oracle's
// object-identity drift: the share of prompted objects whose identity (found in the prompt's colour; voted
// shape) differs between the first and the last 16 frames.
//
//   npm run eval:vidrd -- [--prompts 2] [--steps 8] [--lengths 64,240] [--temporal-vae DIR] [--clip DIR]
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { intOption } from '../src/cli/options.js';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { decodeChunkFrames, generateLongVideo } from '../src/pipelines/long_video/chunked.js';
import type { LongVideoMode } from '../src/pipelines/long_video/chunked.js';
import { naiveMode } from '../src/pipelines/long_video/naive.js';
import { vidrdMode } from '../src/pipelines/vidrd.js';
import { AutoencoderKL } from '../src/models/vae/autoencoder_kl.js';
import { loadStateDict, readConfig } from '../src/io/model_folder.js';
import { analyzeMotion, detectSceneCuts, frameConsistency } from '../src/metrics/index.js';
import type { ClipEmbedder } from '../src/metrics/index.js';
import { loadClipEmbedder } from '../src/models/clip/embedder.js';
import { scoreVideo } from '../src/training/data/oracle.js';
import { worldSample } from '../src/training/data/world.js';
import { writeJsonAtomic } from '../src/training/export.js';

const MODEL = resolve('models/default');
const [W, H] = [64, 64];

interface Row {
  readonly label: string;
  readonly mode: () => LongVideoMode;
  /** Re-decode the row above's latents with the temporal decoder instead of generating. */
  readonly temporalOf?: string;
}

const ROWS: Row[] = [
  { label: 'naive', mode: naiveMode },
  { label: '+FNR', mode: () => vidrdMode({ fnr: true, pns: null, dsg: null }) },
  { label: '+FNR+PNS', mode: () => vidrdMode({ fnr: true, dsg: null }) },
  { label: '+FNR+PNS+DSG', mode: () => vidrdMode({}) },
  { label: 'full + temporal decoder', mode: () => vidrdMode({}), temporalOf: '+FNR+PNS+DSG' },
];

/** The base (image) VAE and the temporal one: from models/default when it ships one, else --temporal-vae. */
function loadVaes(temporalDir: string | undefined): { base: AutoencoderKL; temporal: AutoencoderKL | null } {
  const dir = join(MODEL, 'vae');
  const cfg = readConfig(dir);
  const weights = loadStateDict(dir).stateDict;
  if (cfg['temporal_decoder'] === true) {
    const base = AutoencoderKL.fromConfig({ ...cfg, temporal_decoder: false });
    base.loadWeights(new Map([...weights].filter(([k]) => !k.includes('.temp_convs.'))));
    const temporal = AutoencoderKL.fromConfig(cfg);
    temporal.loadWeights(weights);
    return { base, temporal };
  }
  const base = AutoencoderKL.fromConfig(cfg);
  base.loadWeights(weights);
  if (!temporalDir) return { base, temporal: null };
  const tcfg = readConfig(temporalDir);
  if (tcfg['temporal_decoder'] !== true)
    throw new Error(`--temporal-vae ${temporalDir}: no temporal decoder`);
  const temporal = AutoencoderKL.fromConfig(tcfg);
  temporal.loadWeights(loadStateDict(temporalDir).stateDict);
  return { base, temporal };
}

interface Scores {
  scuts: number;
  mawe: number | null;
  smoothness: number | null;
  clipConsistency: number | null;
  identityDrift: number;
  seconds: number;
}

/** Per prompted object: [found in the prompt's colour, voted shape]. */
function identities(frames: Uint8Array[], prompt: string): string[] {
  const s = scoreVideo(frames, W, H, prompt);
  const objects = (s.details['objects'] as Array<Record<string, unknown>>) ?? [];
  return objects.map((o) => `${(o['presence'] as number) >= 0.6}|${String(o['shape'])}`);
}

async function score(
  frames: Uint8Array[],
  prompt: string,
  clip: ClipEmbedder | null,
  seconds: number,
): Promise<Scores> {
  const cuts = await detectSceneCuts(frames, W, H);
  const motion = await analyzeMotion(frames, W, H, { size: null });
  const first = identities(frames.slice(0, 16), prompt);
  const last = identities(frames.slice(-16), prompt);
  const changed = first.filter((id, i) => id !== last[i]).length;
  return {
    scuts: cuts.cuts.length,
    mawe: motion.mawe,
    smoothness: motion.smoothness.smoothness,
    clipConsistency: clip ? await frameConsistency({ frames, width: W, height: H }, clip) : null,
    identityDrift: first.length > 0 ? changed / first.length : 0,
    seconds,
  };
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--prompts <n>', 'held-out world prompts', intOption('--prompts', 1), 2)
    .option('--steps <n>', 'denoising steps per chunk', intOption('--steps', 1), 8)
    .option('--lengths <list>', 'video lengths in frames', (v) => v.split(',').map(Number), [64, 240])
    .option('--chunk <n>', 'chunk length F', intOption('--chunk', 2), 16)
    .option('--overlap <n>', 'overlap O', intOption('--overlap', 0), 8)
    .option('--seed <n>', 'seed of prompt i is seed + i', intOption('--seed', 0), 0)
    .option(
      '--temporal-vae <dir>',
      'a VAE folder with a trained temporal decoder (when models/default has none)',
    )
    .option('--clip <dir>', 'a CLIPModel folder for CLIP frame consistency')
    .option('--json <file>', 'also write the per-video scores here', 'bench/vidrd_eval.json')
    .parse()
    .opts<{
      prompts: number;
      steps: number;
      lengths: number[];
      chunk: number;
      overlap: number;
      seed: number;
      temporalVae?: string;
      clip?: string;
      json: string;
    }>();
  const pipe = await TextToVideoPipeline.fromPretrained(MODEL);
  const { base, temporal } = loadVaes(o.temporalVae);
  const basePipe = new TextToVideoPipeline({ ...pipe.components, vae: base });
  const tempPipe = temporal ? new TextToVideoPipeline({ ...pipe.components, vae: temporal }) : null;
  const clip = o.clip && existsSync(o.clip) ? await loadClipEmbedder(o.clip) : null;
  const prompts = Array.from(
    { length: o.prompts },
    (_, i) => worldSample(o.seed, i, { width: W, height: H, frames: 16, split: 'heldout' }).caption,
  );
  const results: Array<{ row: string; frames: number; prompt: string; scores: Scores }> = [];
  const t0 = performance.now();
  for (const n of o.lengths)
    for (const [pi, prompt] of prompts.entries()) {
      const latentsOf = new Map<string, Array<{ latents: Float32Array; skip: number; count: number }>>();
      for (const row of ROWS) {
        const start = performance.now();
        const frames: Uint8Array[] = [];
        if (row.temporalOf) {
          if (!tempPipe) continue;
          const shape = { channels: 4, frames: o.chunk, height: H / 4, width: W / 4 };
          for (const c of latentsOf.get(row.temporalOf)!)
            frames.push(...(await decodeChunkFrames(tempPipe, c.latents, shape, c.skip, c.count)).frames);
        } else {
          const chunks: Array<{ latents: Float32Array; skip: number; count: number }> = [];
          const opts = {
            prompt,
            numFrames: n,
            chunk: o.chunk,
            overlap: o.overlap,
            height: H,
            width: W,
            numInferenceSteps: o.steps,
            seed: o.seed + pi,
            fps: 8,
            guidanceScale: 9,
          };
          for await (const e of generateLongVideo(basePipe, opts, row.mode()))
            if (e.kind === 'chunk-done') {
              frames.push(...e.frames);
              chunks.push({ latents: e.latents.data as Float32Array, skip: e.skip, count: e.frames.length });
            }
          latentsOf.set(row.label, chunks);
        }
        const scores = await score(frames, prompt, clip, (performance.now() - start) / 1000);
        results.push({ row: row.label, frames: n, prompt, scores });
        process.stderr.write(
          `${n} frames · "${prompt}" · ${row.label}: ${JSON.stringify(scores)} (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`,
        );
      }
    }
  writeJsonAtomic(o.json, { settings: { ...o, prompts }, results });
  const f = (v: number | null, d: number) => (v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(d));
  const mean = (xs: (number | null)[]) => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const lines = [
    `| mode | frames | SCuts ↓ | MAWE ↓ | flow smoothness ↓ | CLIP frame consistency ↑ | identity drift ↓ | s / video |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const n of o.lengths)
    for (const row of ROWS) {
      const rs = results.filter((r) => r.row === row.label && r.frames === n).map((r) => r.scores);
      if (rs.length === 0) continue;
      lines.push(
        `| ${row.label} | ${n} | ${f(mean(rs.map((r) => r.scuts)), 2)} | ${f(mean(rs.map((r) => r.mawe)), 2)} | ${f(mean(rs.map((r) => r.smoothness)), 3)} | ${f(mean(rs.map((r) => r.clipConsistency)), 4)} | ${f(mean(rs.map((r) => r.identityDrift)), 2)} | ${f(mean(rs.map((r) => r.seconds)), 0)} |`,
      );
    }
  console.log(
    `${o.prompts} held-out prompts × seed ${o.seed}+i, ${o.steps} DDIM steps, chunk ${o.chunk}, overlap ${o.overlap}, guidance 9, 64×64; wall ${((performance.now() - t0) / 60000).toFixed(1)} min`,
  );
  console.log(prompts.map((p, i) => `prompt ${i}: "${p}"`).join('\n'));
  console.log(lines.join('\n'));
}

await main();
