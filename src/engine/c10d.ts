// The engine's typed bridge to the addon's c10d ops (native/distributed.cc), used by src/distributed:
// availability, the rendezvous store's client, and unwrapping engine tensors into handles.
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


/**
 * A client of the rendezvous store (panseg's store server on rank 0, src/distributed/store-server.ts).
 * It is a c10d::Store natively, so process groups exchange their addresses through it.
 */
export class Store {
  private constructor(readonly h: DistHandle, readonly host: string, readonly port: number) {}

  /** Connects and presents `token`; `timeoutMs` also bounds later reads (get waits that long for a key). */
  static connect(host: string, port: number, token: string, timeoutMs: number): Store {
    return new Store(native.storeConnect(host, port, token, timeoutMs), host, port);
  }
  set(key: string, value: string): void { native.storeSet(this.h, key, value); }
  /** Waits up to the store's timeout for `key`. */
  get(key: string): string { return native.storeGet(this.h, key); }
  add(key: string, delta: number): number { return native.storeAdd(this.h, key, delta); }
  has(key: string): boolean { return native.storeCheck(this.h, [key]); }
}
