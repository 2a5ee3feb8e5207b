// GIF89a building blocks: a byte reader over a file handle, sub-block I/O, and LZW decoding.

import type { FileHandle } from 'node:fs/promises';

/** Sequential reader over a file with a small buffer; `need` reports the file ending early. */
export class ByteReader {
  private buf = new Uint8Array(0);
  private pos = 0;
  private filePos = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly onEnd: (what: string) => Error,
  ) {}

  private async fill(n: number, what: string): Promise<void> {
    if (this.buf.length - this.pos >= n) return;
    const rest = this.buf.subarray(this.pos);
    const chunk = new Uint8Array(Math.max(n, 65536));
    const { bytesRead } = await this.fh.read(chunk, 0, chunk.length, this.filePos);
    this.filePos += bytesRead;
    const merged = new Uint8Array(rest.length + bytesRead);
    merged.set(rest);
    merged.set(chunk.subarray(0, bytesRead), rest.length);
    this.buf = merged;
    this.pos = 0;
    if (this.buf.length < n) throw this.onEnd(what);
  }

  async bytes(n: number, what: string): Promise<Uint8Array> {
    await this.fill(n, what);
    const out = this.buf.slice(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  async u8(what: string): Promise<number> {
    await this.fill(1, what);
    return this.buf[this.pos++]!;
  }

  async u16(what: string): Promise<number> {
    const b = await this.bytes(2, what);
    return b[0]! | (b[1]! << 8);
  }

  /** Reads data sub-blocks up to the 0 terminator and concatenates them. */
  async subBlocks(what: string): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const len = await this.u8(what);
      if (len === 0) break;
      const part = await this.bytes(len, what);
      parts.push(part);
      total += len;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

/** Splits `data` into GIF data sub-blocks (≤ 255 bytes each) followed by the 0 terminator. */
export function toSubBlocks(data: Uint8Array): Uint8Array {
  const blocks = Math.ceil(data.length / 255);
  const out = new Uint8Array(data.length + blocks + 1);
  let o = 0;
  for (let i = 0; i < data.length; i += 255) {
    const part = data.subarray(i, Math.min(i + 255, data.length));
    out[o++] = part.length;
    out.set(part, o);
    o += part.length;
  }
  out[o] = 0;
  return out;
}

/**
 * Decodes GIF LZW `data` (sub-blocks already joined) into `pixelCount` palette indices. Returns null when the
 * code stream is invalid (a code that is not yet defined).
 */
export function lzwDecode(data: Uint8Array, minCodeSize: number, pixelCount: number): Uint8Array | null {
  const out = new Uint8Array(pixelCount);
  const clear = 1 << minCodeSize;
  const eoi = clear + 1;
  const prefix = new Int16Array(4096);
  const suffix = new Uint8Array(4096);
  const first = new Uint8Array(4096);
  const stack = new Uint8Array(4097);
  for (let i = 0; i < clear; i++) {
    suffix[i] = i;
    first[i] = i;
    prefix[i] = -1;
  }
  let codeSize = minCodeSize + 1;
  let next = eoi + 1;
  let prev = -1;
  let bits = 0;
  let acc = 0;
  let o = 0;
  for (let i = 0; i < data.length && o < pixelCount;) {
    while (bits < codeSize && i < data.length) {
      acc |= data[i++]! << bits;
      bits += 8;
    }
    if (bits < codeSize) break;
    const code = acc & ((1 << codeSize) - 1);
    acc >>>= codeSize;
    bits -= codeSize;
    if (code === clear) {
      codeSize = minCodeSize + 1;
      next = eoi + 1;
      prev = -1;
      continue;
    }
    if (code === eoi) break;
    if (code > next || (code === next && prev < 0)) return null;
    let c = code === next ? prev : code;
    let sp = 0;
    if (code === next) stack[sp++] = first[prev]!;
    while (c >= 0 && c >= clear) {
      stack[sp++] = suffix[c]!;
      c = prefix[c]!;
    }
    stack[sp++] = suffix[c]!;
    while (sp > 0 && o < pixelCount) out[o++] = stack[--sp]!;
    if (prev >= 0 && next < 4096) {
      prefix[next] = prev;
      suffix[next] = code === next ? first[prev]! : first[code]!;
      first[next] = first[prev]!;
      next++;
      if (next === 1 << codeSize && codeSize < 12) codeSize++;
    }
    prev = code;
  }
  return out;
}
