// A structural pre-check of WebM/Matroska files before mediabunny demuxes them. When mediabunny meets a
// top-level element it does not expect (an unknown ID, or an unreadable size), it resyncs by searching byte by
// byte for the next known ID; that search makes no progress once fewer than 9 bytes remain before the end of
// the Segment and then spins forever without yielding, so no timeout can stop it (found by `npm run fuzz`;
// the input is in test/corpus/video/). Walking the Segment's children once and refusing any child that is not
// one of the Level-1 elements (or Void) keeps mediabunny off that path. It is stricter than mediabunny: a
// file with garbage between top-level elements is refused as VIDEO_CORRUPT instead of being recovered.
// Hand-written rather than an npm EBML parser: ~60 lines of reading headers, and the packages on npm are
// stream decoders of whole files.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { VideoError } from './errors.js';

const EBML_MAGIC = 0x1a45dfa3;
const SEGMENT_ID = 0x18538067;
/** SeekHead, Info, Tracks, Cluster, Cues, Attachments, Chapters, Tags, and Void: what a Segment may hold. */
const SEGMENT_CHILDREN = new Set([
  0x114d9b74, 0x1549a966, 0x1654ae6b, 0x1f43b675, 0x1c53bb6b, 0x1941a469, 0x1043a770, 0x1254c367, 0xec,
]);
/** Top-level children are read one by one; a file with more than this is not a video we wrote or expect. */
const MAX_ELEMENTS = 1_000_000;

interface Vint {
  value: number;
  length: number;
  unknown: boolean;
}

/** An EBML variable-length integer at buf[at]; `keepMarker` for IDs. Null when the first byte is 0 or it runs out. */
function readVint(buf: Uint8Array, at: number, maxLength: number, keepMarker: boolean): Vint | null {
  const first = buf[at];
  if (first === undefined || first === 0) return null;
  const length = Math.clz32(first) - 23; // leading zeros within the byte, plus one
  if (length > maxLength || at + length > buf.length) return null;
  let value = keepMarker ? first : first & (0xff >> length);
  let allOnes = value === 0xff >> length;
  for (let i = 1; i < length; i++) {
    const b = buf[at + i]!;
    value = value * 256 + b;
    allOnes &&= b === 0xff;
  }
  return { value, length, unknown: !keepMarker && allOnes };
}

/** Returns silently for a non-EBML file or a sound structure; throws VIDEO_CORRUPT naming the bad element. */
export function checkEbmlStructure(path: string): void {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    const buf = new Uint8Array(12); // the longest ID (4 bytes) plus the longest size (8 bytes)
    const header = (pos: number): { id: number; size: Vint; dataStart: number } | null => {
      const n = readSync(fd, buf, 0, buf.length, pos);
      const view = buf.subarray(0, n);
      const id = readVint(view, 0, 4, true);
      const size = id && readVint(view, id.length, 8, false);
      return id && size ? { id: id.value, size, dataStart: pos + id.length + size.length } : null;
    };
    const ebml = header(0);
    if (ebml === null || ebml.id !== EBML_MAGIC) return; // not Matroska: another reader handles it
    if (ebml.size.unknown) throw new VideoError('CORRUPT', path, 'the EBML header has no size');
    const segment = header(ebml.dataStart + ebml.size.value);
    if (segment === null || segment.id !== SEGMENT_ID) return; // mediabunny reports a missing segment itself
    const end = segment.size.unknown ? fileSize : Math.min(fileSize, segment.dataStart + segment.size.value);
    let pos = segment.dataStart;
    for (let count = 0; pos < end - 1 && count < MAX_ELEMENTS; count++) {
      const child = header(pos);
      if (child === null) {
        throw new VideoError(
          'CORRUPT',
          path,
          `the top-level element at byte ${pos} has an unreadable ID or size`,
        );
      }
      if (!SEGMENT_CHILDREN.has(child.id)) {
        const id = `0x${child.id.toString(16)}`;
        throw new VideoError(
          'CORRUPT',
          path,
          `unexpected element ${id} at byte ${pos} at the top level of the Segment`,
        );
      }
      if (child.size.unknown) return; // a live-streamed cluster: its end is found by the demuxer
      pos = child.dataStart + child.size.value;
    }
  } finally {
    closeSync(fd);
  }
}
