// Error measure of the LVDM parity tests: max |a − b| and that relative to max |b|.
export function maxRelErr(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { abs, rel: abs / scale };
}
