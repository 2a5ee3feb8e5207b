// Runs Programs with ONNX Runtime: emit once, cache the session by graph signature, feed host tensors.
// The ONNX Runtime package comes from ort_backend.ts: onnxruntime-node in Node, onnxruntime-web in the browser
// bundle (which swaps in ort_backend.web.ts); everything here is shared.
import type * as ort from 'onnxruntime-node';
import type { ExecutionProvider } from './backend.js';
import type { DType, HostData, Program, Shape } from './ir.js';
import { numel } from './ir.js';
import { emitOnnx } from './onnx/emit.js';
import { ortBackend } from './ort_backend.js';
import { KinemaError } from '../errors.js';

export type { ExecutionProvider } from './backend.js';

/** Which ONNX Runtime package this build runs on, and the provider used when none is named. */
export const runtimeBackend = { name: ortBackend.name, defaultEp: ortBackend.defaultEp } as const;

export interface HostTensor {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly data: HostData;
}

export function hostTensor(data: HostData, shape: Shape, dtype?: DType): HostTensor {
  if (data.length !== numel(shape))
    throw new KinemaError(
      'ENGINE_BAD_FEED',
      `tensor data has ${data.length} values but shape [${shape}] needs ${numel(shape)}`,
    );
  return { data, shape: [...shape], dtype: dtype ?? inferDType(data) };
}

function inferDType(data: HostData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint16Array) return 'float16';
  return 'uint8';
}

export interface CompileOptions {
  readonly ep?: ExecutionProvider;
  /** Weight values to bake in as initializers (by program input name). */
  readonly initializers?: ReadonlyMap<string, HostData>;
  readonly threads?: number;
  /** Lower attention to the fused kernel (default: yes, except on webgpu; see emitTarget). */
  readonly fusedAttention?: boolean;
  /** Force external data (weights in a side file). Chosen automatically above ~1.5 GB of weights. */
  readonly externalData?: boolean;
  /** A key identifying the initializer values, so two weight sets never share a cached session. */
  readonly weightsKey?: string;
}

const EXTERNAL_THRESHOLD = 1.5 * 1024 ** 3;

/** A compiled program: an ORT session plus the program's input/output names. */
/**
 * Lowering choices per provider. onnxruntime-node 1.30's WebGPU MultiHeadAttention kernel returns wrong values
 * once sequences are longer than a few tokens (relative error ~0.1 at 256 tokens, exact at 2; measured against
 * the CPU provider by test/engine/webgpu.test.ts), so attention is lowered to standard ops there.
 */
function emitTarget(ep: ExecutionProvider, opts: CompileOptions): { fusedAttention: boolean } {
  return { fusedAttention: opts.fusedAttention ?? ep !== 'webgpu' };
}

/** ONNX Runtime's error when an execution provider cannot start, with what the user can do about it. */
export function providerError(ep: ExecutionProvider, e: unknown): Error {
  const msg = e instanceof Error ? e.message : String(e);
  if (ep === 'webgpu' && /adapter/i.test(msg))
    return new KinemaError(
      'ENGINE_PROVIDER_FAILED',
      'the webgpu execution provider found no GPU adapter (on Linux it needs a Vulkan driver: a GPU driver, ' +
        "or Mesa's lavapipe CPU driver newer than Debian 12's 22.3, e.g. bookworm-backports' 25 via " +
        'scripts/install-lavapipe.sh; use --device cpu otherwise). ' +
        `ONNX Runtime said: ${msg.trim()}`,
      { cause: e },
    );
  if (ep === 'cuda' && /cuda|provider|libonnxruntime_providers/i.test(msg))
    return new KinemaError(
      'ENGINE_PROVIDER_FAILED',
      "the cuda execution provider could not start (install onnxruntime-node's CUDA provider with a " +
        `matching CUDA runtime, or use --device cpu). ONNX Runtime said: ${msg.trim()}`,
      { cause: e },
    );
  return e instanceof Error ? e : new Error(msg);
}

export class Executable {
  private constructor(
    readonly program: Program,
    private readonly session: ort.InferenceSession,
    private readonly inputNames: readonly string[],
  ) {}

  static async create(program: Program, opts: CompileOptions = {}): Promise<Executable> {
    const init = opts.initializers;
    const inputNames = program.inputs
      .filter((i) => !(i.role === 'weight' && init?.has(i.name)))
      .map((i) => i.name);
    const ep = opts.ep ?? ortBackend.defaultEp;
    const so: ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      graphOptimizationLevel: ortBackend.optimizationLevel(ep),
      intraOpNumThreads: opts.threads ?? 0,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    };
    const profile = ortBackend.profilePrefix();
    if (profile) Object.assign(so, { enableProfiling: true, profileFilePrefix: profile });
    const weightBytes = init ? [...init.values()].reduce((s, d) => s + d.byteLength, 0) : 0;
    if (opts.externalData || weightBytes > EXTERNAL_THRESHOLD) {
      const target = { ...(init ? { initializers: init } : {}), ...emitTarget(ep, opts) };
      const emit = (write: (b: Uint8Array) => number): Uint8Array =>
        emitOnnx(program, { ...target, externalDataFile: { location: 'weights.bin', write } });
      const session = await ortBackend.createWithExternalData(emit, so).catch((e: unknown) => {
        throw providerError(ep, e);
      });
      return new Executable(program, session, inputNames);
    }
    const bytes = emitOnnx(program, { ...(init ? { initializers: init } : {}), ...emitTarget(ep, opts) });
    const session = await ortBackend.InferenceSession.create(bytes, so).catch((e: unknown) => {
      throw providerError(ep, e);
    });
    return new Executable(program, session, inputNames);
  }

  /** Input names the caller must feed (weights baked in as initializers are not among them). */
  get feeds(): readonly string[] {
    return this.inputNames;
  }

  async run(feeds: Readonly<Record<string, HostTensor>>): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const name of this.inputNames) {
      const t = feeds[name];
      if (!t) throw new KinemaError('ENGINE_BAD_FEED', `missing input '${name}'`);
      const spec = this.program.inputs.find((i) => i.name === name)!;
      if (t.shape.join() !== spec.v.shape.join() || t.dtype !== spec.v.dtype) {
        throw new KinemaError(
          'ENGINE_BAD_FEED',
          `input '${name}': expected ${spec.v.dtype}[${spec.v.shape}], got ${t.dtype}[${t.shape}]`,
        );
      }
      if (t.dtype === 'bfloat16')
        throw new KinemaError(
          'ENGINE_BAD_FEED',
          `input '${name}': bfloat16 tensors must be cast to float32 on the host`,
        );
      ortFeeds[name] = new ortBackend.Tensor(t.dtype, t.data as ort.Tensor.DataType, [...t.shape]);
    }
    const results = await this.session.run(ortFeeds);
    const out: Record<string, HostTensor> = {};
    for (const o of this.program.outputs) {
      const r = results[o.name];
      if (!r) throw new KinemaError('ENGINE_BAD_FEED', `runtime produced no output '${o.name}'`);
      out[o.name] = { dtype: o.atom.dtype, shape: [...r.dims], data: r.data as HostData };
      r.dispose();
    }
    return out;
  }

  async release(): Promise<void> {
    if (ortBackend.profilePrefix()) this.session.endProfiling();
    await this.session.release();
  }
}

const cache = new Map<string, Promise<Executable>>();

/** Structural signature of a program (equations, shapes, params, literal values). */
export function programSignature(program: Program): string {
  const h = ortBackend.sha256();
  h.update(JSON.stringify(program.inputs.map((i) => [i.name, i.role, i.v.id, i.v.shape, i.v.dtype])));
  for (const e of program.eqns) {
    h.update(JSON.stringify([e.prim, e.params, e.outputs.map((o) => [o.id, o.shape, o.dtype])]));
    for (const a of e.inputs) {
      h.update(`${a.kind}${a.id}`);
      if (a.kind === 'lit') h.update(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength));
    }
  }
  h.update(JSON.stringify(program.outputs.map((o) => [o.name, o.atom.id])));
  return h.digestHex();
}

/** Compiles (or returns the cached session for) a program with the given options. */
export function compile(program: Program, opts: CompileOptions = {}): Promise<Executable> {
  const key = [
    programSignature(program),
    opts.ep ?? ortBackend.defaultEp,
    opts.weightsKey ?? (opts.initializers ? 'anon' : 'none'),
    opts.threads ?? 0,
    opts.fusedAttention ?? 'auto',
  ].join('|');
  if (opts.initializers && !opts.weightsKey) return Executable.create(program, opts); // no key: cannot share safely
  let hit = cache.get(key);
  if (!hit) {
    hit = Executable.create(program, opts);
    cache.set(key, hit);
    hit.catch(() => cache.delete(key));
  }
  return hit;
}

export function clearSessionCache(): void {
  cache.clear();
}
