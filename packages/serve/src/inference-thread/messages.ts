/** Messages between `tamp serve`'s event-loop thread and its inference thread (ARCHITECTURE.md, `@tamp/serve`). */
import type { DeviceRequest, ModelInfo } from '@tamp/webgpu';

export type ToThread =
  | { readonly type: 'load'; readonly id: number; readonly path: string; readonly device: DeviceRequest }
  | { readonly type: 'run'; readonly id: number; readonly model: number; readonly input: Float32Array }
  | { readonly type: 'dispose'; readonly model: number };

export type FromThread =
  | { readonly type: 'loaded'; readonly id: number; readonly model: number; readonly info: ModelInfo }
  | { readonly type: 'ran'; readonly id: number; readonly output: Float32Array }
  /** `code`: a TampError's code, rebuilt as one on the other side; undefined for anything else. */
  | { readonly type: 'error'; readonly id: number; readonly code: string | undefined; readonly message: string };
