// MP4 (H.264) and WebM (VP9) through mediabunny (pure TS muxer/demuxer) and @napi-rs/webcodecs (FFmpeg codecs).
// Both directions stream: each frame is encoded and muxed as it arrives; reading decodes packet by packet.

import { EncodedVideoChunk, VideoDecoder, VideoEncoder, VideoFrame } from '@napi-rs/webcodecs';
import {
  ALL_FORMATS,
  EncodedPacket,
  EncodedPacketSink,
  EncodedVideoPacketSource,
  FilePathSource,
  FilePathTarget,
  Input,
  Mp4OutputFormat,
  Output,
  WebMOutputFormat,
} from 'mediabunny';
import type { InputVideoTrack } from 'mediabunny';
import { VideoError, checkFrameSize } from './errors.js';
import { checkEbmlStructure } from './ebml_check.js';
import type { FrameSink, VideoFormat, VideoInfo, VideoReader } from './types.js';
import { matrixFromName, rgbToI420, yuv420ToRgb } from './yuv.js';
import { KinemaError, isKinemaError } from '../../errors.js';

const MAX_QUEUED = 4;

/** Lets the codec's worker make progress (its 'dequeue' event is not dependable here, so poll briefly). */
function pause(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

/** quality 0..100 → VP9 quantizer 0..63 (100 = finest). */
function vp9Quantizer(quality: number): number {
  return Math.round((63 * (100 - quality)) / 100);
}

/**
 * quality 0..100 → H.264 target bitrate. The bundled H.264 encoder ignores per-frame quantizers, so quality sets
 * bits per pixel: 0.01·2^(quality/10) (q 50 → 0.32, q 75 → 1.8, q 100 → 10 bits per pixel per frame).
 */
function h264Bitrate(quality: number, width: number, height: number, fps: number): number {
  return Math.max(10_000, Math.round(0.01 * 2 ** (quality / 10) * width * height * fps));
}

export interface EncodeSettings {
  width: number;
  height: number;
  fps: number;
  quality: number;
}

/** Streams RGB24 frames to an MP4 (H.264 High) or WebM (VP9) file at `path`; odd sizes are padded to even. */
export async function createContainerSink(
  path: string,
  format: 'mp4' | 'webm',
  s: EncodeSettings,
): Promise<FrameSink> {
  // H.264 4:2:0 needs even sizes, and @napi-rs/webcodecs mis-sizes the chroma planes of odd-sized I420 frames
  // (floor instead of ceil), so both codecs get an even picture: a last column/row repeated when needed.
  const codedWidth = s.width + (s.width & 1);
  const codedHeight = s.height + (s.height & 1);
  const output = new Output({
    format: format === 'mp4' ? new Mp4OutputFormat({ fastStart: false }) : new WebMOutputFormat(),
    target: new FilePathTarget(path),
  });
  const source = new EncodedVideoPacketSource(format === 'mp4' ? 'avc' : 'vp9');
  output.addVideoTrack(source, { frameRate: s.fps });
  await output.start();
  let failure: unknown = null;
  let muxChain: Promise<void> = Promise.resolve();
  const encoder = new VideoEncoder({
    output: (chunk, meta) => {
      const data = new Uint8Array(chunk.byteLength);
      chunk.copyTo(data);
      // @napi-rs/webcodecs leaves chunk.duration unset; without it the MP4 muxer gives the last sample no
      // duration and 16 frames at 8 fps play for 1.875 s. Every frame lasts 1/fps (the timestamps in write()).
      const duration = chunk.duration ? chunk.duration / 1e6 : 1 / s.fps;
      const packet = new EncodedPacket(data, chunk.type, chunk.timestamp / 1e6, duration);
      muxChain = muxChain.then(() => source.add(packet, meta)).catch((e: unknown) => void (failure ??= e));
    },
    error: (e) => void (failure ??= e),
  });
  encoder.configure({
    codec: format === 'mp4' ? 'avc1.640033' : 'vp09.00.10.08',
    width: codedWidth,
    height: codedHeight,
    framerate: s.fps,
    latencyMode: 'quality',
    ...(format === 'mp4'
      ? { avc: { format: 'avc' as const }, bitrate: h264Bitrate(s.quality, codedWidth, codedHeight, s.fps) }
      : { bitrateMode: 'quantizer' as const }),
  });
  const quantizer = vp9Quantizer(s.quality);
  const check = (): void => {
    if (failure !== null) throw new VideoError('CORRUPT', path, `encoding failed: ${String(failure)}`);
  };
  let index = 0;
  return {
    async write(rgb) {
      check();
      const i420 = rgbToI420(rgb, s.width, s.height, codedWidth, codedHeight);
      const timestamp = Math.round((index * 1e6) / s.fps);
      const duration = Math.round(((index + 1) * 1e6) / s.fps) - timestamp;
      const frame = new VideoFrame(i420, { format: 'I420', codedWidth, codedHeight, timestamp, duration });
      encoder.encode(frame, { keyFrame: index === 0, ...(format === 'webm' ? { vp9: { quantizer } } : {}) });
      frame.close();
      index++;
      while (encoder.encodeQueueSize > MAX_QUEUED && failure === null) await pause();
      await muxChain;
      check();
    },
    async finish() {
      check();
      await encoder.flush();
      encoder.close();
      await muxChain;
      check();
      if (index === 0) throw new VideoError('EMPTY', path, 'no frames were written');
      await output.finalize();
    },
    async cancel() {
      if (encoder.state !== 'closed') encoder.close();
      await muxChain;
      if (output.state !== 'finalized' && output.state !== 'canceled') await output.cancel();
    },
  };
}

interface DecodedPicture {
  frame: VideoFrame;
}

async function frameToRgb(frame: VideoFrame, width: number, height: number): Promise<Uint8Array> {
  const fmt = frame.format;
  const cs = frame.colorSpace;
  const even = (frame.codedWidth & 1) === 0 && (frame.codedHeight & 1) === 0;
  if (even && (fmt === 'I420' || fmt === 'I420A' || fmt === 'NV12')) {
    const buf = new Uint8Array(frame.allocationSize());
    const layout = await frame.copyTo(buf);
    const [yl, ul, vl] = layout;
    return yuv420ToRgb({
      width,
      height,
      y: { data: buf, offset: yl!.offset, stride: yl!.stride },
      u: { data: buf, offset: ul!.offset, stride: ul!.stride },
      v: fmt === 'NV12' ? null : { data: buf, offset: vl!.offset, stride: vl!.stride },
      matrix: matrixFromName(cs.matrix),
      fullRange: cs.fullRange === true,
    });
  }
  // Other layouts (4:2:2, 4:4:4, high bit depth) and odd sizes (whose planes @napi-rs/webcodecs copies with
  // floor-sized chroma): let the codec library convert.
  const rgba = new Uint8Array(frame.codedWidth * frame.codedHeight * 4);
  await frame.copyTo(rgba, { format: 'RGBA' });
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * frame.codedWidth + x) * 4;
      const o = (y * width + x) * 3;
      out[o] = rgba[i]!;
      out[o + 1] = rgba[i + 1]!;
      out[o + 2] = rgba[i + 2]!;
    }
  }
  return out;
}

/**
 * The track's decoder config, made acceptable to @napi-rs/webcodecs: its codec-string parser rejects some valid
 * H.264 levels (e.g. 'avc1.640009' from tiny pictures) although FFmpeg decodes from the avcC description alone,
 * so such a string is retried with level 5.1.
 */
async function decoderConfigFor(path: string, track: InputVideoTrack) {
  const config = await track.getDecoderConfig();
  if (config !== null) {
    if ((await VideoDecoder.isConfigSupported(config)).supported) return config;
    const m = /^(avc[13]\.[0-9a-fA-F]{4})[0-9a-fA-F]{2}$/.exec(config.codec);
    const retry = m ? { ...config, codec: `${m[1]}33` } : null;
    if (retry && (await VideoDecoder.isConfigSupported(retry)).supported) return retry;
  }
  throw new VideoError('UNSUPPORTED', path, `video codec ${String(track.codec)} cannot be decoded`);
}

async function* decodeTrack(
  path: string,
  track: InputVideoTrack,
  info: VideoInfo,
): AsyncGenerator<Uint8Array> {
  let config;
  try {
    config = await decoderConfigFor(path, track);
  } catch (err) {
    throw asCorrupt(err, path, 'the video track cannot be decoded');
  }
  const ready: DecodedPicture[] = [];
  let failure: unknown = null;
  const decoder = new VideoDecoder({
    output: (frame) => void ready.push({ frame }),
    error: (e) => void (failure ??= e),
  });
  const fail = (): VideoError =>
    new VideoError('CORRUPT', path, `video data cannot be decoded: ${String(failure)}`);
  try {
    decoder.configure({ ...config, hardwareAcceleration: 'prefer-software' });
    for await (const packet of new EncodedPacketSink(track).packets()) {
      if (failure !== null) throw fail();
      const timestamp = Math.round(packet.timestamp * 1e6);
      decoder.decode(new EncodedVideoChunk({ type: packet.type, timestamp, data: packet.data }));
      while (decoder.decodeQueueSize > MAX_QUEUED && failure === null) await pause();
      while (ready.length > 0) yield await takeRgb(ready, info);
    }
    await decoder.flush().catch((e: unknown) => void (failure ??= e));
    if (failure !== null) throw fail();
    while (ready.length > 0) yield await takeRgb(ready, info);
  } catch (err) {
    throw asCorrupt(err, path, 'the video data cannot be read');
  } finally {
    for (const p of ready) p.frame.close();
    if (decoder.state !== 'closed') decoder.close();
  }
}

async function takeRgb(ready: DecodedPicture[], info: VideoInfo): Promise<Uint8Array> {
  const { frame } = ready.shift()!;
  try {
    return await frameToRgb(frame, info.width, info.height);
  } finally {
    frame.close();
  }
}

/** Opens an MP4/MOV or WebM/Matroska file for streaming decode. */
export async function openContainer(path: string): Promise<VideoReader> {
  checkEbmlStructure(path); // before mediabunny, which can loop forever on some malformed WebM files
  const input = new Input({ source: new FilePathSource(path), formats: ALL_FORMATS });
  try {
    const containerName = (await input.getFormat()).name;
    const format: VideoFormat = /webm|matroska/i.test(containerName) ? 'webm' : 'mp4';
    const track = await input.getPrimaryVideoTrack();
    if (track === null) {
      throw new VideoError('UNSUPPORTED', path, `${containerName} file has no video track`);
    }
    const stats = format === 'mp4' ? await track.computePacketStats(Infinity, { metadataOnly: true }) : null;
    if (stats !== null && stats.packetCount === 0) {
      throw new VideoError('EMPTY', path, 'the video track has no frames');
    }
    checkFrameSize(track.codedWidth, track.codedHeight, path, `the ${containerName} video track`);
    const fps = (await track.computeFrameRateMetrics()).bestGuessFrameRate;
    const info: VideoInfo = {
      width: track.codedWidth,
      height: track.codedHeight,
      fps,
      frameCount: stats?.packetCount ?? null,
      format,
    };
    return readerOf(path, input, track, info);
  } catch (err) {
    input.dispose();
    throw asCorrupt(err, path, 'the container cannot be parsed');
  }
}

/**
 * A demuxer or decoder failure on malformed data (mediabunny throws plain RangeErrors and TypeErrors for
 * offsets past the end, bad element sizes, …) as VIDEO_CORRUPT naming the file; KinemaErrors pass through.
 */
function asCorrupt(err: unknown, path: string, what: string): unknown {
  if (isKinemaError(err)) return err;
  const detail = err instanceof Error ? err.message : String(err);
  return new VideoError('CORRUPT', path, `${what}: ${detail}`, { cause: err });
}

function readerOf(path: string, input: Input, track: InputVideoTrack, info: VideoInfo): VideoReader {
  let used = false;
  return {
    info,
    frames() {
      if (used)
        throw new KinemaError('VIDEO_READER_REUSED', `${path}: frames() can be iterated once per reader`);
      used = true;
      return decodeTrack(path, track, info);
    },
    async close() {
      input.dispose();
    },
  };
}
