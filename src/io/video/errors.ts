/** Error codes for video reading and writing; each names what went wrong with the file at `path`. */
import { KinemaError } from '../../errors.js';

export type VideoErrorCode =
  'NOT_FOUND' | 'UNREADABLE' | 'EMPTY' | 'CORRUPT' | 'TRUNCATED' | 'UNSUPPORTED' | 'BAD_FRAME';

/** A video or image file could not be read or written; `code` is `VIDEO_<reason>` (docs/errors.md). */
export class VideoError extends KinemaError {
  /** The short reason (`CORRUPT`, …); `code` is the catalogue's `VIDEO_CORRUPT`. */
  readonly reason: VideoErrorCode;
  readonly path: string;

  constructor(reason: VideoErrorCode, path: string, message: string, options?: { cause?: unknown }) {
    super(`VIDEO_${reason}`, `${path}: ${message}`, options);
    this.name = 'VideoError';
    this.reason = reason;
    this.path = path;
  }
}

/** Checks that `rgb` is one RGB24 frame of `width`×`height`; throws BAD_FRAME otherwise. */
export function checkRgbFrame(rgb: Uint8Array, width: number, height: number, path: string): void {
  if (!(rgb instanceof Uint8Array)) {
    throw new VideoError('BAD_FRAME', path, 'frame is not a Uint8Array');
  }
  const expected = width * height * 3;
  if (rgb.length !== expected) {
    throw new VideoError(
      'BAD_FRAME',
      path,
      `frame has ${rgb.length} bytes, expected ${expected} (RGB24 ${width}x${height})`,
    );
  }
}

/** Maps a Node file-system error to a VideoError (NOT_FOUND, UNREADABLE), or returns null for other errors. */
export function fsErrorToVideoError(err: unknown, path: string): VideoError | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new VideoError('NOT_FOUND', path, 'no such file or folder', { cause: err });
  }
  if (code === 'EACCES' || code === 'EPERM' || code === 'EISDIR' || code === 'ELOOP') {
    return new VideoError('UNREADABLE', path, `cannot be read (${String(code)})`, { cause: err });
  }
  return null;
}

/** Largest frame side Kinema decodes (WebP's own VP8 limit; 4× the width of 4K video). */
export const MAX_FRAME_SIDE = 16384;
/** Largest frame area: 64 MP (8K UHD is 33 MP); one RGBA canvas of it is 256 MiB. */
export const MAX_FRAME_PIXELS = 2 ** 26;

/**
 * A size from a file header, checked before anything is allocated for it: a corrupt or hostile header can
 * claim a canvas of millions of pixels per side, which would be an out-of-memory crash, not an error.
 */
export function checkFrameSize(width: number, height: number, path: string, what: string): void {
  if (!(width >= 1 && height >= 1)) {
    throw new VideoError('CORRUPT', path, `${what} is ${width}×${height}`);
  }
  if (width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE || width * height > MAX_FRAME_PIXELS) {
    throw new VideoError(
      'UNSUPPORTED',
      path,
      `${what} is ${width}×${height}, beyond Kinema's limit of ${MAX_FRAME_SIDE} px a side and ` +
        `${MAX_FRAME_PIXELS / 2 ** 20} MP (a corrupt header, or a picture far larger than a video frame)`,
    );
  }
}
