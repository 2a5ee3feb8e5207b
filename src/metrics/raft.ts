// Optical flow from a user-provided RAFT model exported to ONNX, run with onnxruntime-node.
//
// Expected model (read from the session's metadata, not assumed by name):
// - two float32 inputs, the first frame then the second (in the model's input order), each [1, 3, H, W], RGB,
//   planar. Pixel range: `inputRange: '0-255'` (default; the original princeton-vl RAFT, whose forward()
//   normalises 2·(x/255) − 1 itself) or `'-1-1'` (torchvision's `raft_large` fed through
//   `Raft_Large_Weights.transforms()`, which is how StreamingT2V's mawe.py calls it).
// - an output [1, 2, H, W] holding the flow (u, v) in pixels from frame 1 to frame 2. When the model has several
//   outputs (e.g. low-resolution and upsampled flow, or one per refinement iteration) the last output whose
//   shape is [1, 2, H, W] is used, unless `outputName` says otherwise.
//
// Inputs are padded to a multiple of 8 in H and W exactly like RAFT's `InputPadder` (replicate padding, split
// evenly with the extra pixel at the bottom/right) and the flow is cropped back. If the model was exported with
// a fixed spatial size, frames are instead resized (bilinear) to it and the flow is resized back and rescaled.
import * as ort from 'onnxruntime-node';
import { resizeBilinear } from './image_ops.js';
import type { FlowEstimator, FlowField } from './optical_flow.js';
import { KinemaError } from '../errors.js';

export interface RaftOptions {
  inputRange?: '0-255' | '-1-1';
  /** Name of the flow output; default: the last output shaped [1, 2, H, W]. */
  outputName?: string;
  /** onnxruntime intra-op threads; default onnxruntime's choice. */
  threads?: number;
}

interface Padding {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

/** RAFT's InputPadder ('sintel' mode): pads so both sides are multiples of 8. */
export function raftPadding(width: number, height: number): Padding {
  const padH = (8 - (height % 8)) % 8;
  const padW = (8 - (width % 8)) % 8;
  return { left: padW >> 1, right: padW - (padW >> 1), top: padH >> 1, bottom: padH - (padH >> 1) };
}

/** RGB24 → planar float [3, H+pad, W+pad] with replicate padding, scaled to the model's range. */
function toPlanar(
  rgb: Uint8Array,
  width: number,
  height: number,
  pad: Padding,
  range: '0-255' | '-1-1',
): Float32Array {
  const pw = width + pad.left + pad.right;
  const ph = height + pad.top + pad.bottom;
  const plane = pw * ph;
  const out = new Float32Array(3 * plane);
  const scale = range === '0-255' ? 1 : 2 / 255;
  const shift = range === '0-255' ? 0 : -1;
  for (let y = 0; y < ph; y++) {
    const sy = Math.min(height - 1, Math.max(0, y - pad.top));
    for (let x = 0; x < pw; x++) {
      const sx = Math.min(width - 1, Math.max(0, x - pad.left));
      const s = (sy * width + sx) * 3;
      const o = y * pw + x;
      out[o] = rgb[s]! * scale + shift;
      out[plane + o] = rgb[s + 1]! * scale + shift;
      out[2 * plane + o] = rgb[s + 2]! * scale + shift;
    }
  }
  return out;
}

function fixedSpatialSize(
  meta: ort.InferenceSession.ValueMetadata,
): { width: number; height: number } | null {
  if (!meta.isTensor || meta.shape.length !== 4) return null;
  const h = meta.shape[2];
  const w = meta.shape[3];
  return typeof h === 'number' && typeof w === 'number' && h > 0 && w > 0 ? { width: w, height: h } : null;
}

/** RAFT (ONNX) as a `FlowEstimator`. Create with `RaftEstimator.load(path)`. */
export class RaftEstimator implements FlowEstimator {
  readonly name = 'raft';

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputs: [string, string],
    private readonly fixedSize: { width: number; height: number } | null,
    private readonly opts: RaftOptions,
  ) {}

  static async load(modelPath: string, opts: RaftOptions = {}): Promise<RaftEstimator> {
    const sessionOpts: ort.InferenceSession.SessionOptions = {};
    if (opts.threads !== undefined) sessionOpts.intraOpNumThreads = opts.threads;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, sessionOpts);
    } catch (err) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `RAFT: cannot load ONNX model ${modelPath}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const metas = session.inputMetadata;
    if (metas.length !== 2) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `RAFT: model ${modelPath} has ${metas.length} inputs, expected 2 (image1, image2)`,
      );
    }
    for (const m of metas) {
      if (!m.isTensor || m.type !== 'float32' || (m.shape.length !== 0 && m.shape.length !== 4)) {
        const desc = m.isTensor ? `${m.type} [${m.shape.join(', ')}]` : 'not a tensor';
        throw new KinemaError(
          'METRIC_BAD_INPUT',
          `RAFT: input '${m.name}' is ${desc}; expected float32 [1, 3, H, W]`,
        );
      }
    }
    const fixedSize = fixedSpatialSize(metas[0]!);
    if (fixedSize !== null && (fixedSize.width % 8 !== 0 || fixedSize.height % 8 !== 0)) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `RAFT: fixed model input size ${fixedSize.width}x${fixedSize.height} is not a multiple of 8`,
      );
    }
    if (opts.outputName !== undefined && !session.outputNames.includes(opts.outputName)) {
      throw new KinemaError(
        'METRIC_BAD_INPUT',
        `RAFT: model has no output '${opts.outputName}' (outputs: ${session.outputNames.join(', ')})`,
      );
    }
    return new RaftEstimator(session, [metas[0]!.name, metas[1]!.name], fixedSize, opts);
  }

  async estimate(prev: Uint8Array, next: Uint8Array, width: number, height: number): Promise<FlowField> {
    if (prev.length !== width * height * 3 || next.length !== width * height * 3) {
      throw new KinemaError('METRIC_BAD_INPUT', `RAFT: frames do not match ${width}x${height} RGB`);
    }
    if (this.fixedSize !== null && (this.fixedSize.width !== width || this.fixedSize.height !== height)) {
      return this.estimateResized(prev, next, width, height, this.fixedSize);
    }
    const pad = raftPadding(width, height);
    const pw = width + pad.left + pad.right;
    const ph = height + pad.top + pad.bottom;
    const range = this.opts.inputRange ?? '0-255';
    const feeds: Record<string, ort.Tensor> = {
      [this.inputs[0]]: new ort.Tensor('float32', toPlanar(prev, width, height, pad, range), [1, 3, ph, pw]),
      [this.inputs[1]]: new ort.Tensor('float32', toPlanar(next, width, height, pad, range), [1, 3, ph, pw]),
    };
    const flow = this.pickOutput(await this.session.run(feeds), pw, ph);
    const u = new Float32Array(width * height);
    const v = new Float32Array(width * height);
    const plane = pw * ph;
    for (let y = 0; y < height; y++) {
      const src = (y + pad.top) * pw + pad.left;
      u.set(flow.subarray(src, src + width), y * width);
      v.set(flow.subarray(plane + src, plane + src + width), y * width);
    }
    return { u, v };
  }

  private async estimateResized(
    prev: Uint8Array,
    next: Uint8Array,
    width: number,
    height: number,
    size: { width: number; height: number },
  ): Promise<FlowField> {
    const resize = (rgb: Uint8Array): Uint8Array => {
      const out = new Uint8Array(size.width * size.height * 3);
      for (let c = 0; c < 3; c++) {
        const plane = new Float32Array(width * height);
        for (let i = 0; i < plane.length; i++) plane[i] = rgb[i * 3 + c]!;
        const r = resizeBilinear(plane, width, height, size.width, size.height);
        for (let i = 0; i < r.length; i++) out[i * 3 + c] = Math.min(255, Math.max(0, Math.round(r[i]!)));
      }
      return out;
    };
    const f = await this.estimate(resize(prev), resize(next), size.width, size.height);
    const u = resizeBilinear(f.u, size.width, size.height, width, height);
    const v = resizeBilinear(f.v, size.width, size.height, width, height);
    const su = width / size.width;
    const sv = height / size.height;
    for (let i = 0; i < u.length; i++) {
      u[i]! *= su;
      v[i]! *= sv;
    }
    return { u, v };
  }

  private pickOutput(results: ort.InferenceSession.ReturnType, pw: number, ph: number): Float32Array {
    const matches = (t: ort.OnnxValue | undefined): t is ort.Tensor =>
      t instanceof ort.Tensor &&
      t.type === 'float32' &&
      t.dims.length === 4 &&
      t.dims[0] === 1 &&
      t.dims[1] === 2 &&
      t.dims[2] === ph &&
      t.dims[3] === pw;
    const names =
      this.opts.outputName !== undefined ? [this.opts.outputName] : [...this.session.outputNames].reverse();
    for (const name of names) {
      const t = results[name];
      if (matches(t)) return t.data as Float32Array;
    }
    const got = this.session.outputNames.map((n) => {
      const t = results[n];
      return t instanceof ort.Tensor ? `${n} ${t.type} [${t.dims.join(', ')}]` : `${n} (not a tensor)`;
    });
    throw new KinemaError(
      'METRIC_BAD_INPUT',
      `RAFT: no float32 output shaped [1, 2, ${ph}, ${pw}]; model returned ${got.join('; ')}`,
    );
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
