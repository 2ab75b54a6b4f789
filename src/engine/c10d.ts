// The engine's typed bridge to the addon's c10d ops (native/distributed.cc), used by src/distributed:
// availability, the TCPStore, and unwrapping engine tensors into handles.
import { fail } from '../common/errors.js';
import { type DistHandle, native } from './native.js';
export { handles } from './tensor.js';

export { native as c10d, type DistHandle };

/** Why distributed training cannot run in this build, or null when it can. */
export function distributedUnavailable(): string | null {
  return native.distAvailable() || null;
}

/** The process-group backends in this build: 'gloo' (CPU) and/or 'nccl' (CUDA libtorch, NCCL headers present at build time). */
export function distributedBackends(): ('gloo' | 'nccl')[] {
  return native.distBackends();
}

/** True when this build has c10d's NCCL backend. */
export function ncclAvailable(): boolean {
  return distributedBackends().includes('nccl');
}

/** Throws a clear error when this libtorch build has no c10d/Gloo. */
export function ensureDistributed(op: string): void {
  const why = distributedUnavailable();
  if (why) fail(op, why);
}


/** A c10d TCPStore: a small key-value server on rank 0 that every rank connects to. */
export class Store {
  private constructor(readonly h: DistHandle, readonly host: string, readonly port: number) {}

  /** Rank 0 serves (and connects to itself); the others connect, retrying until `timeoutMs`. */
  static open(host: string, port: number, isServer: boolean, timeoutMs: number): Store {
    const h = native.storeOpen(host, port, isServer, timeoutMs);
    return new Store(h, host, native.storePort(h));
  }
  set(key: string, value: string): void { native.storeSet(this.h, key, value); }
  /** Waits up to the store's timeout for `key`. */
  get(key: string): string { return native.storeGet(this.h, key); }
  add(key: string, delta: number): number { return native.storeAdd(this.h, key, delta); }
  has(key: string): boolean { return native.storeCheck(this.h, [key]); }
}
