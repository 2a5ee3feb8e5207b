// Frames → a video file in the browser with WebCodecs through mediabunny (the muxer the Node side uses too):
// WebM/VP9 first, MP4/H.264 second; PNG stills where the browser has no encoder for either.
import {
  BufferTarget,
  CanvasSource,
  Mp4OutputFormat,
  Output,
  QUALITY_HIGH,
  WebMOutputFormat,
  getFirstEncodableVideoCodec,
} from 'mediabunny';

function drawFrame(ctx: OffscreenCanvasRenderingContext2D, rgb: Uint8Array, w: number, h: number): void {
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    img.data[i * 4] = rgb[i * 3]!;
    img.data[i * 4 + 1] = rgb[i * 3 + 1]!;
    img.data[i * 4 + 2] = rgb[i * 3 + 2]!;
    img.data[i * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

export async function encodeVideo(
  frames: Uint8Array[],
  width: number,
  height: number,
  fps: number,
): Promise<{ blob: Blob; mimeType: string; codec: string } | null> {
  if (typeof VideoEncoder === 'undefined') return null;
  const codec = await getFirstEncodableVideoCodec(['vp9', 'vp8', 'avc'], { width, height });
  if (codec === null) return null;
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d');
  if (!ctx) return null;
  const format = codec === 'avc' ? new Mp4OutputFormat() : new WebMOutputFormat();
  const output = new Output({ format, target: new BufferTarget() });
  const source = new CanvasSource(canvas, { codec, bitrate: QUALITY_HIGH, keyFrameInterval: 1 });
  output.addVideoTrack(source, { frameRate: fps });
  await output.start();
  for (const [i, rgb] of frames.entries()) {
    drawFrame(ctx, rgb, width, height);
    await source.add(i / fps, 1 / fps);
  }
  await output.finalize();
  const mimeType = await output.getMimeType();
  return { blob: new Blob([output.target.buffer!], { type: mimeType }), mimeType, codec };
}

export async function encodePngs(frames: Uint8Array[], width: number, height: number): Promise<Blob[]> {
  const canvas = new OffscreenCanvas(width, height);
  const ctx = canvas.getContext('2d')!;
  const out: Blob[] = [];
  for (const rgb of frames) {
    drawFrame(ctx, rgb, width, height);
    out.push(await canvas.convertToBlob({ type: 'image/png' }));
  }
  return out;
}
