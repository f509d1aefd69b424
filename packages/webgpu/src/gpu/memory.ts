/**
 * Every GPU buffer a model creates goes through here, so the bytes it holds
 * on the GPU are counted from the buffers actually created (not estimated),
 * and dispose() can release all of them.
 */
/** GPUBufferUsage and GPUMapMode values (WebGPU spec), so nothing depends on the globals being installed (Dawn in Node). */
export const BUFFER_USAGE = Object.freeze({ MAP_READ: 0x0001, COPY_SRC: 0x0004, COPY_DST: 0x0008, UNIFORM: 0x0040, STORAGE: 0x0080 });
export const MAP_READ = 0x0001;

export type BufferKind = 'weight' | 'activation' | 'staging' | 'uniform';

export class GpuMemory {
  private readonly live = new Map<GPUBuffer, { bytes: number; kind: BufferKind }>();

  constructor(private readonly device: GPUDevice) {}

  create(label: string, size: number, usage: number, kind: BufferKind): GPUBuffer {
    const bytes = Math.max(4, Math.ceil(size / 4) * 4);
    const buffer = this.device.createBuffer({ label, size: bytes, usage });
    this.live.set(buffer, { bytes, kind });
    return buffer;
  }

  /** A buffer holding `data` (padded with zeros to a multiple of 4 bytes). */
  upload(label: string, data: ArrayBufferView, usage: number, kind: BufferKind): GPUBuffer {
    const bytes = Math.max(4, Math.ceil(data.byteLength / 4) * 4);
    const buffer = this.device.createBuffer({ label, size: bytes, usage, mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    this.live.set(buffer, { bytes, kind });
    return buffer;
  }

  destroy(buffer: GPUBuffer | undefined): void {
    if (buffer === undefined || !this.live.has(buffer)) return;
    this.live.delete(buffer);
    buffer.destroy();
  }

  destroyAll(): void {
    for (const buffer of [...this.live.keys()]) this.destroy(buffer);
  }

  bytes(kind?: BufferKind): number {
    let n = 0;
    for (const b of this.live.values()) if (kind === undefined || b.kind === kind) n += b.bytes;
    return n;
  }

  get buffers(): number {
    return this.live.size;
  }
}
