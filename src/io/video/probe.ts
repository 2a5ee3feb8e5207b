// Container sniffing and structural checks, so that broken files get a precise error code
// (TRUNCATED when the file ends inside a declared structure, CORRUPT when the bytes make no sense).

import { open } from 'node:fs/promises';
import { VideoError } from './errors.js';
import type { VideoFormat } from './types.js';

async function readAt(path: string, position: number, length: number): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(length);
    const { bytesRead } = await fh.read(buf, 0, length, position);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

function ascii(b: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...b.subarray(start, end));
}

/** The format a file's first bytes announce, or null when they match none we read. */
export async function sniffFormat(path: string): Promise<VideoFormat | null> {
  const head = await readAt(path, 0, 16);
  if (head.length >= 6 && /^GIF8[79]a$/.test(ascii(head, 0, 6))) return 'gif';
  if (head.length >= 12 && ascii(head, 0, 4) === 'RIFF' && ascii(head, 8, 12) === 'WEBP') return 'webp';
  if (head.length >= 4 && head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) {
    return 'webm';
  }
  if (head.length >= 8 && /^(ftyp|moov|mdat|free|skip|wide|pdin)$/.test(ascii(head, 4, 8))) return 'mp4';
  return null;
}

const BOX_TYPE = /^[A-Za-z0-9 \-_©]{4}$/;

/** Walks the top-level ISO-BMFF boxes; throws TRUNCATED / CORRUPT for a broken layout. */
async function checkMp4(path: string, size: number): Promise<void> {
  let pos = 0;
  let sawMoov = false;
  let lastType = '';
  while (pos < size) {
    const h = await readAt(path, pos, 16);
    if (h.length < 8) throw new VideoError('TRUNCATED', path, `file ends inside a box header at byte ${pos}`);
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    let boxSize = dv.getUint32(0);
    const type = ascii(h, 4, 8);
    if (!BOX_TYPE.test(type)) throw new VideoError('CORRUPT', path, `invalid MP4 box at byte ${pos}`);
    if (boxSize === 1) {
      if (h.length < 16)
        throw new VideoError('TRUNCATED', path, `file ends inside a box header at byte ${pos}`);
      boxSize = Number(dv.getBigUint64(8));
    } else if (boxSize === 0) {
      boxSize = size - pos;
    }
    if (boxSize < 8) throw new VideoError('CORRUPT', path, `invalid MP4 box size ${boxSize} at byte ${pos}`);
    if (pos + boxSize > size) {
      throw new VideoError('TRUNCATED', path, `'${type}' box needs ${pos + boxSize} bytes, file has ${size}`);
    }
    if (type === 'moov') sawMoov = true;
    lastType = type;
    pos += boxSize;
  }
  if (!sawMoov) {
    const code = lastType === 'mdat' ? 'TRUNCATED' : 'CORRUPT';
    throw new VideoError(code, path, "no 'moov' box (movie header); the file is incomplete");
  }
}

/** Reads an EBML variable-length integer at `off`; returns [value, length] (value -1 = unknown size). */
function readVint(b: Uint8Array, off: number, keepMarker: boolean): [number, number] {
  const first = b[off];
  if (first === undefined || first === 0) return [-2, 0];
  const len = Math.clz32(first) - 23;
  if (off + len > b.length) return [-2, 0];
  let v = keepMarker ? first : first & (0xff >> len);
  let allOnes = v === 0xff >> len;
  for (let i = 1; i < len; i++) {
    v = v * 256 + b[off + i]!;
    allOnes &&= b[off + i] === 0xff;
  }
  return [!keepMarker && allOnes ? -1 : v, len];
}

/** Checks the EBML header and that the Segment fits in the file. */
async function checkWebm(path: string, size: number): Promise<void> {
  const h = await readAt(path, 0, 4096);
  const [, idLen] = readVint(h, 0, true);
  const [hdrSize, hdrLen] = readVint(h, idLen, false);
  if (idLen !== 4 || hdrSize < 0) throw new VideoError('CORRUPT', path, 'invalid EBML header');
  const segStart = idLen + hdrLen + hdrSize;
  if (segStart + 12 > h.length && segStart + 12 > size) {
    throw new VideoError('TRUNCATED', path, 'file ends before the Segment');
  }
  const [segId, segIdLen] = readVint(h, segStart, true);
  if (segId !== 0x18538067)
    throw new VideoError('CORRUPT', path, 'no Matroska Segment after the EBML header');
  const [segSize, segSizeLen] = readVint(h, segStart + segIdLen, false);
  if (segSize === -2) throw new VideoError('CORRUPT', path, 'invalid Segment size');
  const end = segStart + segIdLen + segSizeLen + segSize;
  if (segSize >= 0 && end > size) {
    throw new VideoError('TRUNCATED', path, `Segment needs ${end} bytes, file has ${size}`);
  }
}

/** Throws TRUNCATED or CORRUPT when the container's layout is broken; returns when it looks whole. */
export async function checkContainerStructure(
  path: string,
  format: VideoFormat,
  size: number,
): Promise<void> {
  if (format === 'mp4') await checkMp4(path, size);
  else if (format === 'webm') await checkWebm(path, size);
}
