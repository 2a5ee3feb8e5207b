// `npm run bench:generate [-- --runs N]`: how long `kinema generate "<prompt>"` takes with the shipped default
// model (16 frames, 64×64, 25 DDIM steps, fps 8). Two measurements, each a median over N fresh processes:
//   1. phases: a child process runs the same steps as the CLI (load the pipeline folder, encode the prompt,
//      denoise, decode, write the MP4) and reports each phase's time; first-call compilation of the ONNX
//      programs is inside the phase that first runs them, as it is for a user;
//   2. total: the wall time of the real CLI process (`node --import tsx src/cli/main.ts generate …`), start-up
//      and module loading included.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TextToVideoPipeline } from '../src/pipelines/text_to_video.js';
import { writeVideo } from '../src/io/video/index.js';
import { DEFAULT_MODEL_DIR } from '../src/cli/generate.js';

const PROMPT = 'a red circle moves left on a blue background';
const SETTINGS = { numFrames: 16, height: 64, width: 64, numInferenceSteps: 25, fps: 8, seed: 0 };
const PHASES = ['start', 'load', 'encode', 'denoise', 'decode', 'write', 'total'] as const;
type Phase = (typeof PHASES)[number];

/** One CLI-equivalent generation in this process; prints its phase times (seconds) as one JSON line. */
async function child(out: string): Promise<void> {
  const times: Partial<Record<Phase, number>> = { start: performance.now() / 1000 };
  let t = performance.now();
  const lap = (phase: Phase): void => {
    const now = performance.now();
    times[phase] = (now - t) / 1000;
    t = now;
  };
  const pipe = await TextToVideoPipeline.fromPretrained(DEFAULT_MODEL_DIR);
  lap('load');
  for await (const e of pipe.generate({
    prompt: PROMPT,
    negativePrompt: '',
    guidanceScale: 9,
    ...SETTINGS,
  })) {
    if (e.kind === 'encoded') lap('encode');
    else if (e.kind === 'decoded') lap('decode');
    else if (e.kind === 'step' && e.index === e.total - 1) lap('denoise');
    else if (e.kind === 'done') {
      await writeVideo(out, e.frames, { width: e.width, height: e.height, fps: SETTINGS.fps, format: 'mp4' });
      lap('write');
    }
  }
  times.total = performance.now() / 1000;
  process.stdout.write(`${JSON.stringify(times)}\n`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function run(args: string[]): { seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', ...args], { encoding: 'utf8', timeout: 600_000 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed (exit ${r.status}):\n${r.stderr}`);
  return { seconds, stdout: r.stdout };
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') return child(argv[1]!);
  const runs = Number(argv[argv.indexOf('--runs') + 1] ?? 0) || 3;
  if (!existsSync(join(DEFAULT_MODEL_DIR, 'model_index.json')))
    throw new Error(`no default model at ${DEFAULT_MODEL_DIR} (export the trained stages first)`);
  const dir = mkdtempSync(join(tmpdir(), 'kinema-bench-gen-'));
  try {
    const phases = new Map<Phase, number[]>(PHASES.map((p) => [p, []]));
    const cli: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = run(['bench/generate_default.ts', '--child', join(dir, `phases_${i}.mp4`)]);
      const line = r.stdout.trim().split('\n').at(-1)!;
      const times = JSON.parse(line) as Record<Phase, number>;
      for (const p of PHASES) phases.get(p)!.push(times[p]);
      cli.push(run(['src/cli/main.ts', 'generate', PROMPT, '-o', join(dir, `cli_${i}.mp4`)]).seconds);
    }
    const fmt = (s: number): string => `${s.toFixed(2)} s`;
    console.log(
      `kinema generate "${PROMPT}" — default model, ${SETTINGS.numFrames} frames ${SETTINGS.width}×${SETTINGS.height}, ` +
        `${SETTINGS.numInferenceSteps} steps; median of ${runs} fresh processes`,
    );
    console.log('| phase | median | runs |\n|---|---|---|');
    const label: Record<Phase, string> = {
      start: 'process start + module loading',
      load: 'model load (5 components)',
      encode: 'prompt encode (incl. compile)',
      denoise: `denoise, ${SETTINGS.numInferenceSteps} steps (incl. compile)`,
      decode: 'VAE decode (incl. compile)',
      write: 'MP4 write',
      total: 'total in process',
    };
    for (const p of PHASES)
      console.log(
        `| ${label[p]} | ${fmt(median(phases.get(p)!))} | ${phases
          .get(p)!
          .map((s) => s.toFixed(2))
          .join(', ')} |`,
      );
    const total = median(cli);
    console.log(
      `| **\`kinema generate\` wall time** | **${fmt(total)}** | ${cli.map((s) => s.toFixed(2)).join(', ')} |`,
    );
    console.log(`target ≤ 15 s: ${total <= 15 ? 'met' : 'NOT met'}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
