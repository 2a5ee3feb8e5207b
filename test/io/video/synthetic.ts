// Synthetic test clips: smooth gradients with a moving light disc and a moving dark box.

export function syntheticFrames(width: number, height: number, count: number): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let t = 0; t < count; t++) {
    const f = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const o = (y * width + x) * 3;
        f[o] = Math.round(60 + (120 * x) / (width - 1));
        f[o + 1] = Math.round(50 + (130 * y) / (height - 1));
        f[o + 2] = Math.round(110 + 40 * Math.sin((x + y + 3 * t) / 12));
        if ((x - 10 - 2 * t) ** 2 + (y - height / 2) ** 2 < 100) f.set([230, 220, 200], o);
        if (x >= width - 20 - t && x < width - 8 - t && y >= 6 && y < 18) f.set([30, 35, 50], o);
      }
    }
    frames.push(f);
  }
  return frames;
}

/** PSNR in dB between two RGB24 frames of `width`×`height` inside frames that may be wider/taller (`bw`). */
export function psnr(a: Uint8Array, b: Uint8Array, width: number, height: number, bw = width): number {
  let sum = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width * 3; x++) {
      const d = a[y * width * 3 + x]! - b[y * bw * 3 + x]!;
      sum += d * d;
    }
  }
  const mse = sum / (width * height * 3);
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}
