// The central directory of a zip archive, read with positioned reads so that a multi-gigabyte PyTorch checkpoint
// is never loaded whole: each entry's name, method, sizes and the absolute offset of its data. PyTorch writes
// its records STORED (uncompressed, 64-byte aligned), which is what makes lazy tensor reads possible; zip64
// records (files or offsets past 4 GiB) are handled. The npm zip libraries we looked at stream or inflate whole
// entries through callbacks; a checkpoint reader needs only this directory and byte offsets, so it is kept here.
import { readSync } from 'node:fs';
import { KinemaError } from '../errors.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate, … */
  method: number;
  compressedSize: number;
  size: number;
  /** Absolute file offset of the entry's local header. */
  localHeaderOffset: number;
}

export type ZipErrorCode = 'CKPT_TRUNCATED' | 'CKPT_BAD_ZIP';

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
/** The end record is 22 bytes plus a comment of at most 65535 bytes. */
const EOCD_SEARCH = 22 + 0xffff;
/** A checkpoint has a few records per tensor; a directory claiming more than this is corrupt. */
const MAX_ENTRIES = 10_000_000;

function zipError(code: ZipErrorCode, path: string, message: string): KinemaError {
  return new KinemaError(code, `${path}: ${message}`);
}

/** Reads exactly `length` bytes at `position`, or throws CKPT_TRUNCATED naming what was being read. */
export function preadExact(
  fd: number,
  path: string,
  position: number,
  length: number,
  what: string,
): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) {
      throw zipError(
        'CKPT_TRUNCATED',
        path,
        `unexpected end of file reading ${what} (${done} of ${length} bytes at offset ${position})`,
      );
    }
    done += n;
  }
  return out;
}

function u64(view: DataView, at: number, path: string, what: string): number {
  const v = view.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw zipError('CKPT_BAD_ZIP', path, `${what} ${v} is out of range`);
  return Number(v);
}

/** Parses the zip directory of `fd` (a file of `fileSize` bytes). */
export function readZipDirectory(fd: number, path: string, fileSize: number): Map<string, ZipEntry> {
  const tailStart = Math.max(0, fileSize - EOCD_SEARCH);
  const tail = preadExact(fd, path, tailStart, fileSize - tailStart, 'the zip end record');
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw zipError(
      'CKPT_TRUNCATED',
      path,
      'zip end-of-central-directory record not found (the file is truncated or not a complete zip)',
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let dirSize = tv.getUint32(eocd + 12, true);
  let dirOffset = tv.getUint32(eocd + 16, true);
  if ((count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) && eocd >= 20) {
    if (tv.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIG) {
      const recOffset = u64(tv, eocd - 12, path, 'zip64 end record offset');
      const rec = preadExact(fd, path, recOffset, 56, 'the zip64 end record');
      const rv = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
      if (rv.getUint32(0, true) !== ZIP64_EOCD_SIG) {
        throw zipError('CKPT_BAD_ZIP', path, `no zip64 end record at offset ${recOffset}`);
      }
      count = u64(rv, 32, path, 'zip64 entry count');
      dirSize = u64(rv, 40, path, 'zip64 directory size');
      dirOffset = u64(rv, 48, path, 'zip64 directory offset');
    }
  }
  if (count > MAX_ENTRIES) throw zipError('CKPT_BAD_ZIP', path, `zip directory claims ${count} entries`);
  if (dirOffset + dirSize > fileSize) {
    throw zipError(
      'CKPT_TRUNCATED',
      path,
      `zip directory (offset ${dirOffset}, ${dirSize} bytes) ends past the end of the file (${fileSize} bytes)`,
    );
  }
  const dir = preadExact(fd, path, dirOffset, dirSize, 'the zip central directory');
  const dv = new DataView(dir.buffer, dir.byteOffset, dir.byteLength);
  const decoder = new TextDecoder('utf-8');
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > dir.length || dv.getUint32(at, true) !== CENTRAL_SIG) {
      throw zipError(
        'CKPT_BAD_ZIP',
        path,
        `zip central directory entry ${i} is malformed (offset ${dirOffset + at})`,
      );
    }
    const method = dv.getUint16(at + 10, true);
    let compressedSize = dv.getUint32(at + 20, true);
    let size = dv.getUint32(at + 24, true);
    const nameLen = dv.getUint16(at + 28, true);
    const extraLen = dv.getUint16(at + 30, true);
    const commentLen = dv.getUint16(at + 32, true);
    let localHeaderOffset = dv.getUint32(at + 42, true);
    const end = at + 46 + nameLen + extraLen + commentLen;
    if (end > dir.length)
      throw zipError('CKPT_BAD_ZIP', path, `zip central directory entry ${i} overruns the directory`);
    const name = decoder.decode(dir.subarray(at + 46, at + 46 + nameLen));
    // zip64 extended information: the 64-bit values present are exactly those whose 32-bit field is all ones.
    let x = at + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = dv.getUint16(x, true);
      const len = dv.getUint16(x + 2, true);
      if (x + 4 + len > xEnd) break;
      if (id === 0x0001) {
        let p = x + 4;
        const take = (): number => {
          if (p + 8 > x + 4 + len)
            throw zipError('CKPT_BAD_ZIP', path, `zip64 field of "${name}" is too short`);
          const v = u64(dv, p, path, `zip64 field of "${name}"`);
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = take();
      }
      x += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    at = end;
  }
  return entries;
}

/** Absolute offset of an entry's data (after its local header, whose extra field may differ from the directory's). */
export function entryDataOffset(fd: number, path: string, fileSize: number, entry: ZipEntry): number {
  const head = preadExact(fd, path, entry.localHeaderOffset, 30, `the local header of "${entry.name}"`);
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (hv.getUint32(0, true) !== LOCAL_SIG) {
    throw zipError(
      'CKPT_BAD_ZIP',
      path,
      `no local header for "${entry.name}" at offset ${entry.localHeaderOffset}`,
    );
  }
  const start = entry.localHeaderOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
  if (start + entry.compressedSize > fileSize) {
    throw zipError(
      'CKPT_TRUNCATED',
      path,
      `record "${entry.name}" (${entry.compressedSize} bytes at offset ${start}) ends past the end of the file (${fileSize} bytes)`,
    );
  }
  return start;
}
