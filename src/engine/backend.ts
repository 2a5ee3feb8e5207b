// What the runtime needs from an ONNX Runtime package, so that one runtime.ts serves both onnxruntime-node
// (ort_backend.ts) and onnxruntime-web (ort_backend.web.ts, swapped in by the browser build). The two packages
// share onnxruntime-common's API; only session creation from a side file, hashing and settings differ.
import type * as ort from 'onnxruntime-node';

export type ExecutionProvider = 'cpu' | 'webgpu' | 'cuda' | 'wasm';

/** An incremental SHA-256 (the program-signature cache key). */
export interface Hasher {
  update(data: string | Uint8Array): void;
  digestHex(): string;
}

export interface OrtBackend {
  readonly name: 'onnxruntime-node' | 'onnxruntime-web';
  readonly InferenceSession: typeof ort.InferenceSession;
  readonly Tensor: typeof ort.Tensor;
  /** The provider used when a caller names none ('cpu' in Node, 'wasm' in a browser). */
  readonly defaultEp: ExecutionProvider;
  sha256(): Hasher;
  /** ONNX Runtime's graph optimization level for sessions on `ep`. */
  optimizationLevel(ep: ExecutionProvider): 'all' | 'basic';
  /** The KINEMA_ORT_PROFILE prefix when profiling is asked for (Node's environment), else undefined. */
  profilePrefix(): string | undefined;
  /**
   * A session for a model whose weights live in a side file (models over ONNX's 2 GB protobuf limit): the
   * model is emitted by `emit` with each initializer handed to `write`, which returns its offset in the file.
   */
  createWithExternalData(
    emit: (write: (bytes: Uint8Array) => number) => Uint8Array,
    so: ort.InferenceSession.SessionOptions,
  ): Promise<ort.InferenceSession>;
}
