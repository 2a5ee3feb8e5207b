import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  DTYPE_BYTES,
  SafetensorsError,
  type SafetensorsErrorCode,
  SafetensorsFile,
  type TensorToWrite,
  loadSafetensors,
  serializeSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';

const FIXTURES = resolve(process.cwd(), '../shared/fixtures/parity');

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'kinema-safetensors-'));
}

/** A file with a hand-written header (padded to 8 with spaces unless headerLength overrides the prefix). */
function craft(dir: string, name: string, header: string, data: Uint8Array, headerLength?: bigint): string {
  const json = Buffer.from(header, 'utf8');
  const padded = Buffer.concat([json, Buffer.alloc((8 - (json.length % 8)) % 8, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(headerLength ?? BigInt(padded.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([prefix, padded, data]));
  return path;
}

function expectError(
  fn: () => unknown,
  code: SafetensorsErrorCode,
  path: string,
  mentions: string[] = [],
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.equal(e.reason, code, e.message);
    assert.equal(e.code, `SAFETENSORS_${code}`, e.message);
    assert.equal(e.path, path);
    assert.ok(e.message.includes(path), `message should name the file: ${e.message}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message should mention ${m}: ${e.message}`);
    return true;
  });
}

const EVERY_DTYPE: Record<string, TensorToWrite> = {
  f64: { dtype: 'F64', shape: [], data: Float64Array.of(-1.5e300) },
  f32: { dtype: 'F32', shape: [2, 2], data: Float32Array.of(1, -2, 3.5, Number.NaN) },
  f16: { dtype: 'F16', shape: [3], data: Uint16Array.of(0x3c00, 0xc000, 0x7c00) },
  bf16: { dtype: 'BF16', shape: [1, 2], data: Uint16Array.of(0x3f80, 0xc040) },
  i64: { dtype: 'I64', shape: [2], data: BigInt64Array.of(-(2n ** 62n), 999n) },
  i32: { dtype: 'I32', shape: [2], data: Int32Array.of(-7, 2 ** 31 - 1) },
  i16: { dtype: 'I16', shape: [2], data: Int16Array.of(-32768, 12) },
  i8: { dtype: 'I8', shape: [3], data: Int8Array.of(-128, 0, 127) },
  u64: { dtype: 'U64', shape: [1], data: BigUint64Array.of(2n ** 64n - 1n) },
  u32: { dtype: 'U32', shape: [1], data: Uint32Array.of(0xdeadbeef) },
  u16: { dtype: 'U16', shape: [2], data: Uint16Array.of(0, 65535) },
  u8: { dtype: 'U8', shape: [3], data: Uint8Array.of(0, 128, 255) },
  bool: { dtype: 'BOOL', shape: [3], data: Uint8Array.of(1, 0, 1) },
  e4m3: { dtype: 'F8_E4M3', shape: [4], data: Uint8Array.of(0x38, 0x7e, 0x01, 0xb8) },
  e5m2: { dtype: 'F8_E5M2', shape: [4], data: Uint8Array.of(0x3c, 0x7b, 0x7c, 0xc0) },
  empty: { dtype: 'I32', shape: [0, 3], data: new Int32Array(0) },
};

const NATIVE_TYPE: Record<string, string> = {
  F64: 'Float64Array',
  F32: 'Float32Array',
  F16: 'Uint16Array',
  BF16: 'Uint16Array',
  I64: 'BigInt64Array',
  I32: 'Int32Array',
  I16: 'Int16Array',
  I8: 'Int8Array',
  U64: 'BigUint64Array',
  U32: 'Uint32Array',
  U16: 'Uint16Array',
  U8: 'Uint8Array',
  BOOL: 'Uint8Array',
  F8_E4M3: 'Uint8Array',
  F8_E5M2: 'Uint8Array',
};

test('DTYPE_BYTES has the element sizes of the format', () => {
  assert.deepEqual(
    Object.entries(DTYPE_BYTES).sort(),
    Object.entries({ F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2 })
      .concat(Object.entries({ U8: 1, BOOL: 1, F8_E4M3: 1, F8_E5M2: 1 }))
      .sort(),
  );
});

test('round trip of every dtype, 0-dim and empty tensors, metadata', () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'all.safetensors');
    writeSafetensors(path, EVERY_DTYPE, { format: 'pt', note: 'ünïcode ✓' });
    const file = SafetensorsFile.open(path);
    try {
      assert.deepEqual(file.names(), Object.keys(EVERY_DTYPE).sort());
      assert.deepEqual(file.metadata, { format: 'pt', note: 'ünïcode ✓' });
      for (const [name, t] of Object.entries(EVERY_DTYPE)) {
        const info = file.info(name);
        assert.equal(info.dtype, t.dtype);
        assert.deepEqual(info.shape, t.shape);
        assert.equal(info.byteLength, t.data.byteLength);
        const got = file.read(name);
        assert.equal(got.constructor.name, NATIVE_TYPE[t.dtype], name);
        assert.deepEqual(
          new Uint8Array(got.buffer, got.byteOffset, got.byteLength),
          new Uint8Array(t.data.buffer),
        );
      }
      assert.ok(file.has('f32') && !file.has('nope'));
    } finally {
      file.close();
    }
    const loaded = loadSafetensors(path);
    assert.deepEqual([...(loaded.get('i64')!.data as BigInt64Array)], [-(2n ** 62n), 999n]);
    assert.deepEqual(loaded.get('f64')!.shape, []);
    assert.deepEqual(
      readFileSync(path),
      Buffer.from(serializeSafetensors(EVERY_DTYPE, { format: 'pt', note: 'ünïcode ✓' })),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('serialized layout: u64 LE length, sorted compact JSON padded with spaces to 8, data in key order', () => {
  const bytes = serializeSafetensors(
    new Map<string, TensorToWrite>([
      ['b', { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) }],
      ['a', { dtype: 'U8', shape: [3], data: Uint8Array.of(7, 8, 9) }],
    ]),
    { format: 'pt' },
  );
  const json =
    '{"__metadata__":{"format":"pt"},"a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},' +
    '"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}}';
  const padded = Math.ceil(json.length / 8) * 8;
  const buf = Buffer.from(bytes);
  assert.equal(buf.readBigUInt64LE(0), BigInt(padded));
  assert.equal(buf.subarray(8, 8 + padded).toString('utf8'), json.padEnd(padded, ' '));
  assert.deepEqual([...buf.subarray(8 + padded, 8 + padded + 3)], [7, 8, 9]);
  assert.deepEqual([...new Float32Array(bytes.slice(8 + padded + 3).buffer)], [1, 2]);
  assert.equal(buf.length, 8 + padded + 11);
});

test('re-serializing a fixture written by the Python writer reproduces it byte for byte', () => {
  const path = join(FIXTURES, 'vae/diffusion_pytorch_model.safetensors');
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, t] of loadSafetensors(path)) tensors.set(name, t);
  assert.equal(tensors.size, 124);
  assert.ok(Buffer.from(serializeSafetensors(tensors, { format: 'pt' })).equals(readFileSync(path)));
});

test('readFloat32 converts every dtype', () => {
  const file = SafetensorsFile.open(writeTemp(EVERY_DTYPE));
  try {
    const f = (name: string): number[] => [...file.readFloat32(name)];
    assert.deepEqual(f('f64'), [Math.fround(-1.5e300)]);
    assert.deepEqual(f('f16'), [1, -2, Infinity]);
    assert.deepEqual(f('bf16'), [1, -3]);
    assert.deepEqual(f('i64'), [Math.fround(-(2 ** 62)), 999]);
    assert.deepEqual(f('i32'), [-7, 2 ** 31]);
    assert.deepEqual(f('i8'), [-128, 0, 127]);
    assert.deepEqual(f('u64'), [2 ** 64]);
    assert.deepEqual(f('u32'), [Math.fround(0xdeadbeef)]);
    assert.deepEqual(f('bool'), [1, 0, 1]);
    assert.deepEqual(f('e4m3'), [1, 448, 2 ** -9, -1]); // e4m3fn: bias 7, max 448, smallest subnormal 2^-9
    assert.deepEqual(f('e5m2'), [1, 57344, Infinity, -2]);
    assert.deepEqual(f('empty'), []);
    assert.ok(Number.isNaN(f('f32')[3]));
  } finally {
    file.close();
  }
});

const scratch = tempDir();
after(() => rmSync(scratch, { recursive: true, force: true }));
let scratchFiles = 0;

function writeTemp(tensors: Record<string, TensorToWrite>): string {
  const path = join(scratch, `t${scratchFiles++}.safetensors`);
  writeSafetensors(path, tensors);
  return path;
}

test('each malformed file gets its own error code naming the file (and tensor)', () => {
  const dir = tempDir();
  try {
    const f32 = (begin: number, end: number, shape = '[2]'): string =>
      `{"dtype":"F32","shape":${shape},"data_offsets":[${begin},${end}]}`;
    const missing = join(dir, 'missing.safetensors');
    expectError(() => SafetensorsFile.open(missing), 'NOT_FOUND', missing);
    const short = join(dir, 'short.safetensors');
    writeFileSync(short, Uint8Array.of(1, 2, 3, 4, 5));
    expectError(() => SafetensorsFile.open(short), 'TRUNCATED', short);
    const beyond = craft(dir, 'beyond', `{"x":${f32(0, 8)}}`, new Uint8Array(8), 1000n);
    expectError(() => SafetensorsFile.open(beyond), 'HEADER_LENGTH_BEYOND_FILE', beyond, ['1000']);
    const badHeaders: [string, string, string[]][] = [
      ['notjson', '{"x": ', []],
      ['array', '[1, 2]', []],
      ['nodtype', '{"x":{"shape":[2],"data_offsets":[0,8]}}', ['"x"', 'dtype']],
      ['negshape', '{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', ['"x"', 'shape']],
      ['fracshape', '{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}', ['"x"', 'shape']],
      ['offsets3', '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}', ['"x"', 'data_offsets']],
      ['metadata', `{"__metadata__":{"a":1},"x":${f32(0, 8)}}`, ['"a"']],
    ];
    for (const [name, header, mentions] of badHeaders) {
      const p = craft(dir, name, header, new Uint8Array(8));
      expectError(() => SafetensorsFile.open(p), 'BAD_HEADER', p, mentions);
    }
    const invalidUtf8 = join(dir, 'utf8.safetensors');
    writeFileSync(
      invalidUtf8,
      Buffer.concat([
        Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]),
        Buffer.from([0x7b, 0xff, 0x7d, 32, 32, 32, 32, 32]),
      ]),
    );
    expectError(() => SafetensorsFile.open(invalidUtf8), 'BAD_HEADER', invalidUtf8, ['UTF-8']);
    const dtype = craft(
      dir,
      'dtype',
      '{"x":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}}',
      new Uint8Array(16),
    );
    expectError(() => SafetensorsFile.open(dtype), 'UNKNOWN_DTYPE', dtype, ['"x"', 'F128']);
    const size = craft(dir, 'size', `{"x":${f32(0, 8, '[3]')}}`, new Uint8Array(8));
    expectError(() => SafetensorsFile.open(size), 'SHAPE_SIZE_MISMATCH', size, ['"x"', '[3]']);
    const reversed = craft(dir, 'reversed', `{"x":${f32(8, 0)}}`, new Uint8Array(8));
    expectError(() => SafetensorsFile.open(reversed), 'OFFSETS_OUT_OF_RANGE', reversed, ['"x"']);
    const far = craft(dir, 'far', `{"x":${f32(0, 8)},"y":${f32(100, 108)}}`, new Uint8Array(16));
    expectError(() => SafetensorsFile.open(far), 'OFFSETS_OUT_OF_RANGE', far, ['"y"']);
    const overlap = craft(dir, 'overlap', `{"x":${f32(0, 8)},"y":${f32(4, 12)}}`, new Uint8Array(12));
    expectError(() => SafetensorsFile.open(overlap), 'OVERLAPPING_OFFSETS', overlap, ['"x"', '"y"']);
    const full = serializeSafetensors({ x: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
    const cut = join(dir, 'cut.safetensors');
    writeFileSync(cut, full.subarray(0, full.length - 3));
    expectError(() => SafetensorsFile.open(cut), 'TRUNCATED', cut);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('missing tensors, reads after close', () => {
  const path = writeTemp({ x: { dtype: 'F32', shape: [1], data: Float32Array.of(5) } });
  const file = SafetensorsFile.open(path);
  expectError(() => file.info('nope'), 'MISSING_TENSOR', path, ['"nope"']);
  expectError(() => file.read('nope'), 'MISSING_TENSOR', path, ['"nope"']);
  assert.deepEqual([...file.readFloat32('x')], [5]);
  file.close();
  assert.throws(() => file.read('x'), /after close/);
  file.close();
});

test('writer rejects inconsistent tensors and leaves no file behind', () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'out.safetensors');
    assert.throws(
      () => writeSafetensors(path, { x: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }),
      (e: unknown) =>
        e instanceof SafetensorsError &&
        e.code === 'SAFETENSORS_SHAPE_SIZE_MISMATCH' &&
        e.message.includes('"x"'),
    );
    assert.throws(
      () => serializeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }),
      (e: unknown) => e instanceof SafetensorsError && e.code === 'SAFETENSORS_BAD_HEADER',
    );
    // The target is a folder, so the final rename fails: the temp file must be cleaned up.
    mkdirSync(path);
    assert.throws(() => writeSafetensors(path, { x: { dtype: 'U8', shape: [1], data: Uint8Array.of(1) } }));
    assert.deepEqual(readdirSync(dir), ['out.safetensors']);
    rmSync(path, { recursive: true });
    writeSafetensors(path, { x: { dtype: 'U8', shape: [1], data: Uint8Array.of(1) } });
    writeSafetensors(path, { y: { dtype: 'U8', shape: [1], data: Uint8Array.of(2) } });
    assert.deepEqual([...loadSafetensors(path).keys()], ['y']);
    assert.deepEqual(readdirSync(dir), ['out.safetensors']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reads the real parity fixtures', () => {
  const unet = SafetensorsFile.open(join(FIXTURES, 'unet3d/diffusion_pytorch_model.safetensors'));
  try {
    assert.equal(unet.names().length, 466);
    assert.deepEqual(unet.metadata, { format: 'pt' });
    let params = 0;
    for (const name of unet.names()) params += unet.info(name).shape.reduce((a, b) => a * b, 1);
    assert.equal(params, 1_328_900);
    const w = unet.readFloat32('conv_in.weight');
    assert.deepEqual(unet.info('conv_in.weight').shape, [32, 4, 3, 3]);
    // Values and float64 sum read independently with Python's json + numpy.frombuffer.
    assert.deepEqual([...w.subarray(0, 3)], [-0.03644527122378349, 0.10986658185720444, -0.1393887996673584]);
    let sum = 0;
    for (const v of w) sum += v;
    assert.ok(Math.abs(sum - -1.5609507896006107) < 1e-12, String(sum));
  } finally {
    unet.close();
  }
  const io = loadSafetensors(join(FIXTURES, 'unet3d/io.safetensors'));
  assert.equal(io.get('timestep')!.dtype, 'I64');
  assert.deepEqual([...(io.get('timestep')!.data as BigInt64Array)], [999n, 500n]);
  assert.deepEqual(io.get('sample')!.shape, [2, 4, 4, 8, 8]);
  const ddim = SafetensorsFile.open(join(FIXTURES, 'scheduler/ddim/io.safetensors'));
  try {
    assert.deepEqual(
      [...ddim.readFloat32('timesteps')],
      Array.from({ length: 25 }, (_, i) => 961 - 40 * i),
    );
  } finally {
    ddim.close();
  }
  const te = SafetensorsFile.open(join(FIXTURES, 'text_encoder/model.safetensors'));
  try {
    assert.equal(te.names().length, 36);
    assert.deepEqual(te.info('text_model.embeddings.token_embedding.weight').shape, [49408, 32]);
  } finally {
    te.close();
  }
});

test('tensors beyond 2 GiB into a (sparse) file are read with positioned reads', () => {
  const dir = tempDir();
  try {
    const big = 3_000_000_000;
    const header =
      `{"big":{"dtype":"U8","shape":[${big}],"data_offsets":[0,${big}]},` +
      `"tail":{"dtype":"F32","shape":[2],"data_offsets":[${big},${big + 8}]}}`;
    const path = craft(dir, 'big.safetensors', header, new Uint8Array(0));
    const dataStart = 8 + Math.ceil(Buffer.byteLength(header) / 8) * 8;
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, dataStart + big + 8);
      writeSync(fd, new Uint8Array(Float32Array.of(1.25, -7).buffer), 0, 8, dataStart + big);
    } finally {
      closeSync(fd);
    }
    const file = SafetensorsFile.open(path);
    try {
      assert.equal(file.info('tail').byteOffset, dataStart + big);
      assert.deepEqual([...file.readFloat32('tail')], [1.25, -7]);
    } finally {
      file.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
