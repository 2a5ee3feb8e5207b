/** 'png' = a folder of frame PNGs (frame_00000.png, …). */
export type VideoFormat = 'mp4' | 'webm' | 'gif' | 'webp' | 'png';

export interface VideoInfo {
  width: number;
  height: number;
  fps: number;
  /** Number of frames when the container says so without decoding; null when unknown. */
  frameCount: number | null;
  format: VideoFormat;
}

export interface VideoReader {
  readonly info: VideoInfo;
  /** RGB24 frames, h*w*3 bytes, row-major, decoded one at a time. Can be iterated once. */
  frames(): AsyncIterable<Uint8Array>;
  close(): Promise<void>;
}

export interface VideoWriterOptions {
  width: number;
  height: number;
  fps: number;
  /** Default: from the path's extension (a path without a known extension is a PNG frame folder). */
  format?: VideoFormat;
  /** 0..100. Default 75: PSNR ≥ 35 dB for mp4/webm on ordinary content. */
  quality?: number;
}

export interface VideoWriter {
  write(rgb: Uint8Array): Promise<void>;
  /** Finalizes the output and renames it into place. */
  close(): Promise<void>;
  /** Deletes the temporary output; the destination is left as it was. */
  abort(): Promise<void>;
}

/** What each format backend implements for writing; `finish` writes the temp output, rename happens outside. */
export interface FrameSink {
  write(rgb: Uint8Array): Promise<void>;
  finish(): Promise<void>;
  cancel(): Promise<void>;
}
