// `npm run bench:engine [-- --threads N] [--quick]`: the same workloads in Kinema (ONNX Runtime CPU) and in
// PyTorch eager (Debian python3-torch, installed if missing), measured in the same run. Prints a table with
// both times, the ratio torch/kinema, achieved GFLOP/s and the machine's measured fp32 FMA peak.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor as T, currentBuilder, trace } from '../src/engine/tensor.js';
import type { Tensor } from '../src/engine/tensor.js';
import * as op from '../src/engine/ops.js';
import { compile, hostTensor } from '../src/engine/runtime.js';
import type { Executable, HostTensor } from '../src/engine/runtime.js';
import { valueAndGrad } from '../src/engine/autodiff.js';
import { Generator } from '../src/engine/random.js';
import { bindWeights } from '../src/nn/compile.js';
import type { Program } from '../src/engine/ir.js';
import { VideoDownBlock } from './video_block.js';
import type { VideoBlockConfig } from './video_block.js';

const args = process.argv.slice(2);
const threads = Number(args[args.indexOf('--threads') + 1] ?? 0) || 2;
const quick = args.includes('--quick');
const BLOCK: VideoBlockConfig = {
  c: 128,
  heads: 8,
  ctxDim: 256,
  tembDim: 512,
  frames: 16,
  batch: 2,
  hw: 16,
  ctxLen: 77,
};

interface Workload {
  name: string;
  kind: string;
  flops?: number;
  target: number;
  [k: string]: unknown;
}

const workloads: Workload[] = [
  { name: 'matmul 1024³', kind: 'matmul', n: 1024, flops: 2 * 1024 ** 3, target: 1.0 },
  {
    name: 'matmul 1024³, B a model weight',
    kind: 'matmul',
    weight: true,
    n: 1024,
    flops: 2 * 1024 ** 3,
    target: 1.0,
  },
  {
    name: 'conv3x3 N16·C128·32²',
    kind: 'conv',
    n: 16,
    c: 128,
    hw: 32,
    flops: 2 * 16 * 128 * 128 * 9 * 32 * 32,
    target: 1.0,
  },
  {
    name: 'conv3x3 N16·C128·32², kernel a model weight',
    kind: 'conv',
    weight: true,
    n: 16,
    c: 128,
    hw: 32,
    flops: 2 * 16 * 128 * 128 * 9 * 32 * 32,
    target: 1.0,
  },
  {
    name: 'attention 64×(256×64)',
    kind: 'attention',
    b: 64,
    l: 256,
    d: 64,
    flops: 2 * 2 * 64 * 256 * 256 * 64,
    target: 1.0,
  },
  { name: 'video block fwd', kind: 'video_block', ...blockArgs(), target: 2.0 },
  { name: 'video block fwd+bwd', kind: 'video_block_train', ...blockArgs(), target: 0.8 },
];

function blockArgs() {
  const b = BLOCK;
  return {
    c: b.c,
    heads: b.heads,
    ctx_dim: b.ctxDim,
    temb_dim: b.tembDim,
    frames: b.frames,
    batch: b.batch,
    hw: b.hw,
    ctx_len: b.ctxLen,
  };
}

function randn(shape: number[], seed: number): HostTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return hostTensor(new Generator(seed).normal(n), shape);
}

async function timeit(
  fn: () => Promise<unknown>,
  minTime = quick ? 0.5 : 2.0,
  maxRuns = 20,
): Promise<number> {
  for (let i = 0; i < 2; i++) await fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < maxRuns && (times.length < 3 || performance.now() - start < minTime * 1000)) {
    const t0 = performance.now();
    await fn();
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/**
 * A two-operand workload: the second operand is a program input fed on every run, or (`weight`) a model weight
 * that Kinema binds into the session as an initializer, as it runs every model (ONNX Runtime may then
 * pre-pack it once). PyTorch eager has no such step: its peer is the same call either way.
 */
async function twoOperand(
  f: (x: Tensor, y: Tensor) => Tensor,
  x: HostTensor,
  y: HostTensor,
  weight: boolean,
): Promise<() => Promise<unknown>> {
  const opts = { threads };
  if (!weight) {
    const p = trace(f, [
      { name: 'x', shape: x.shape },
      { name: 'y', shape: y.shape },
    ]);
    const exe = await compile(p, opts);
    return () => exe.run({ x, y });
  }
  const p = trace(
    (a) => f(a!, new T(currentBuilder().weight('y', y.shape, 'float32'))),
    [{ name: 'x', shape: x.shape }],
  );
  const sd = new Map([['y', y.data as Float32Array]]);
  const exe = await compile(p, { ...opts, initializers: bindWeights(p, sd) });
  return () => exe.run({ x });
}

async function kinemaWorkload(w: Workload): Promise<() => Promise<unknown>> {
  const run = (exe: Executable, feeds: Record<string, HostTensor>) => () => exe.run(feeds);
  const opts = { threads };
  const weight = w['weight'] === true;
  switch (w.kind) {
    case 'matmul': {
      const n = w['n'] as number;
      return twoOperand((a, b) => op.matmul(a, b), randn([n, n], 1), randn([n, n], 2), weight);
    }
    case 'conv': {
      const [n, c, hw] = [w['n'], w['c'], w['hw']] as number[];
      const shape = [n!, c!, hw!, hw!];
      const conv = (x: Tensor, k: Tensor): Tensor => op.conv(x, k, { pads: [1, 1, 1, 1] });
      return twoOperand(conv, randn(shape, 1), randn([c!, c!, 3, 3], 2), weight);
    }
    case 'attention': {
      const shape = [w['b'], w['l'], w['d']] as number[];
      const p = trace(
        (q, k, v) => op.attention(q!, k!, v!),
        ['q', 'k', 'v'].map((name) => ({ name, shape })),
      );
      return run(await compile(p, opts), { q: randn(shape, 1), k: randn(shape, 2), v: randn(shape, 3) });
    }
    default:
      return videoBlockWorkload(w.kind === 'video_block_train');
  }
}

async function videoBlockWorkload(train: boolean): Promise<() => Promise<unknown>> {
  const block = new VideoDownBlock(BLOCK);
  const sd = block.initParameters(0);
  const n = BLOCK.batch * BLOCK.frames;
  const xShape = [n, BLOCK.c, BLOCK.hw, BLOCK.hw];
  const specs = [
    { name: 'x', shape: xShape },
    { name: 'temb', shape: [n, BLOCK.tembDim] },
    { name: 'ctx', shape: [n, BLOCK.ctxLen, BLOCK.ctxDim] },
  ];
  const feeds: Record<string, HostTensor> = {
    x: randn(xShape, 1),
    temb: randn([n, BLOCK.tembDim], 2),
    ctx: randn([n, BLOCK.ctxLen, BLOCK.ctxDim], 3),
  };
  if (!train) {
    const p = trace((x, t, c) => block.forward(x!, t!, c!), specs);
    const exe = await compile(p, { threads, initializers: bindWeights(p, sd), weightsKey: 'bench' });
    return () => exe.run(feeds);
  }
  const r = randn(xShape, 4);
  const p: Program = valueAndGrad(
    (x, t, c, rr) => op.sum(op.mul(block.forward(x!, t!, c!), rr!), [0, 1, 2, 3]),
    [...specs, { name: 'r', shape: xShape }],
  );
  const exe = await compile(p, { threads });
  const all: Record<string, HostTensor> = { ...feeds, r };
  for (const inp of p.inputs)
    if (inp.role === 'weight') all[inp.name] = hostTensor(sd.get(inp.name)!, inp.v.shape);
  return () => exe.run(all);
}

function ensureTorch(): string {
  const py = '/usr/bin/python3';
  const ok = existsSync(py) && spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  if (!ok) {
    console.error('installing the PyTorch peer (Debian python3-torch, libopenblas0-openmp)…');
    execFileSync('apt-get', ['install', '-y', '-qq', 'python3-torch', 'libopenblas0-openmp'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  return py;
}

/** The PyTorch peer as a long-lived process answering one timing request per line. */
class TorchPeer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private constructor(py: string) {
    const env = {
      ...process.env,
      OPENBLAS_CORETYPE: 'Cooperlake',
      OMP_NUM_THREADS: String(threads),
      OPENBLAS_NUM_THREADS: String(threads),
    };
    this.proc = spawn(py, [join(import.meta.dirname, 'peer_torch.py')], { env });
    this.proc.stderr.on('data', (d: Buffer) => process.stderr.write(d));
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
    this.proc.stdin.write(JSON.stringify(workloads) + '\n');
  }
  static async start(py: string): Promise<TorchPeer> {
    const peer = new TorchPeer(py);
    const hello = JSON.parse(await peer.next()) as { torch: string };
    console.log(`peer: torch ${hello.torch}, ${threads} threads (OpenBLAS, OPENBLAS_CORETYPE=Cooperlake)`);
    return peer;
  }
  private async next(): Promise<string> {
    const r = await this.lines.next();
    if (r.done) throw new Error('the PyTorch peer exited');
    return r.value;
  }
  async time(name: string): Promise<number> {
    this.proc.stdin.write(JSON.stringify({ name }) + '\n');
    return (JSON.parse(await this.next()) as { seconds: number }).seconds;
  }
  close(): void {
    this.proc.stdin.end();
  }
}

function measurePeak(): number | null {
  const dir = mkdtempSync(join(tmpdir(), 'kinema-peak-'));
  const bin = join(dir, 'peak');
  const cc = spawnSync(
    'gcc',
    ['-O2', '-march=native', '-pthread', join(import.meta.dirname, 'peak_flops.c'), '-o', bin],
    { stdio: 'ignore' },
  );
  if (cc.status !== 0) return null;
  const out = execFileSync(bin, [String(threads)], { encoding: 'utf8' });
  const rows = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { threads: number; gflops: number });
  return rows.find((r) => r.threads === threads)?.gflops ?? null;
}

const ROUNDS = quick ? 1 : 3;

async function main(): Promise<void> {
  const peak = measurePeak();
  console.log(
    `machine fp32 peak (bench/peak_flops.c: 12 register-resident FMA chains per thread, -march=native, ${threads} threads): ${peak?.toFixed(1) ?? 'n/a'} GFLOP/s`,
  );
  const torch = await TorchPeer.start(ensureTorch());
  console.log(
    `each time: the best of ${ROUNDS} interleaved rounds (torch, kinema, torch, kinema, …) of a median over ≥ 3 runs`,
  );
  const rows: string[][] = [];
  for (const w of workloads) {
    const fn = await kinemaWorkload(w);
    let t = Infinity;
    let k = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      t = Math.min(t, await torch.time(w.name));
      k = Math.min(k, await timeit(fn));
    }
    const gf = (s: number) => (w.flops ? (w.flops / s / 1e9).toFixed(1) : '');
    const ratio = t / k;
    const pct = (s: number) => (w.flops && peak ? `${((100 * w.flops) / s / 1e9 / peak).toFixed(0)}%` : '');
    rows.push([
      w.name,
      (t * 1000).toFixed(1),
      (k * 1000).toFixed(1),
      ratio.toFixed(2),
      `≥ ${w.target.toFixed(1)}`,
      ratio >= w.target ? 'yes' : 'NO',
      gf(t),
      gf(k),
      pct(t),
      pct(k),
    ]);
  }
  torch.close();
  const head = [
    'workload',
    'torch ms',
    'kinema ms',
    'torch/kinema',
    'target',
    'met',
    'torch GFLOP/s',
    'kinema GFLOP/s',
    'torch % of peak',
    'kinema % of peak',
  ];
  console.log(`| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

await main();
