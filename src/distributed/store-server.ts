// panseg's rendezvous store server: the key-value store every rank meets at (what c10d's TCPStore
// daemon was). It runs on rank 0 in a worker thread (store-worker.ts), so it keeps answering while
// rank 0's main thread is blocked in a collective, and replaces c10d's daemon because that one
// listens on every interface, reads each request with blocking calls on its single thread (one
// half-sent message stalls every rank) and allocates whatever a length prefix asks for.
//
// This server is event-driven, so one slow or hostile connection holds up nobody:
// - it listens only on the master address;
// - the first frame of a connection must be HELLO with the job's token, within helloTimeoutMs,
//   and no larger than 1 KiB; anything else closes the connection before a key is read or written;
// - a frame must arrive whole within frameTimeoutMs of its first byte;
// - a length prefix above the frame cap closes the connection before anything is allocated;
//   values are capped at maxValueBytes and the whole store at maxStoreBytes.
//
// Protocol (little-endian; the client is PansegStore in native/distributed.cc): a frame is u32
// length, then that many bytes: u8 op (requests) or u8 status (replies: 0 ok, 1 error + message),
// then fields, each u32 length + bytes.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';

export const STORE_MAGIC = 'panseg-store/1';

/** Request ops (the reply's head byte is a status: 0 ok, 1 error). */
export const Op = { Hello: 1, Set: 2, Get: 3, Add: 4, Check: 5, Wait: 6, Delete: 7, NumKeys: 8, CompareSet: 9 } as const;

export interface StoreServerOptions {
  /** Address to listen on (the master address). */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The job's rendezvous token; '' accepts any process that speaks the protocol. */
  token: string;
  /** A new connection must say hello within this. Default 10000 ms. */
  helloTimeoutMs?: number;
  /** A frame must arrive whole within this of its first byte. Default 30000 ms. */
  frameTimeoutMs?: number;
  /** Largest value. Default 16 MiB. */
  maxValueBytes?: number;
  /** Largest total of keys and values held. Default 256 MiB. */
  maxStoreBytes?: number;
  /** Open connections at most. Default 1024. */
  maxConnections?: number;
  /** Connections that have not said hello yet, at most; beyond it the oldest such is closed. Default 128. */
  maxUnauthenticated?: number;
}

export const STORE_DEFAULTS = {
  helloTimeoutMs: 10_000, frameTimeoutMs: 30_000, maxValueBytes: 16 << 20, maxStoreBytes: 256 << 20, maxConnections: 1024, maxUnauthenticated: 128,
} as const;
const MAX_KEY_BYTES = 4096;
const MAX_HELLO_FRAME = 1024;
const MAX_KEYS_PER_REQUEST = 65_536;

/** Encodes one frame: a u32 length, the op or status byte, then length-prefixed fields. */
export function frame(head: number, fields: (string | Buffer)[]): Buffer {
  const bufs = fields.map((f) => (typeof f === 'string' ? Buffer.from(f, 'latin1') : f));
  const out = Buffer.alloc(5 + bufs.reduce((n, b) => n + 4 + b.length, 0));
  out.writeUInt32LE(out.length - 4, 0);
  out[4] = head;
  let off = 5;
  for (const b of bufs) { out.writeUInt32LE(b.length, off); b.copy(out, off + 4); off += 4 + b.length; }
  return out;
}

/** Splits a frame body (after the length) into its head byte and fields; null when malformed. */
export function parseBody(body: Buffer): { head: number; fields: Buffer[] } | null {
  if (body.length < 1) return null;
  const fields: Buffer[] = [];
  let off = 1;
  while (off < body.length) {
    if (off + 4 > body.length) return null;
    const n = body.readUInt32LE(off);
    off += 4;
    if (n > body.length - off) return null;
    fields.push(body.subarray(off, off + n));
    off += n;
  }
  return { head: body[0], fields };
}

const int64 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt.asIntN(64, n)); return b; };
const digest = (s: string) => createHash('sha256').update(s).digest();

interface Conn {
  sock: Socket;
  chunks: Buffer[];
  have: number;
  /** Body length of the frame being read, or -1 before its prefix is complete. */
  need: number;
  authed: boolean;
  timer: NodeJS.Timeout | null;
  /** A GET/WAIT waiting for keys: later frames wait behind it. */
  pending: { keys: string[]; reply: () => void } | null;
  queue: Buffer[];
}

/** Counts of what the server refused (for tests and the log). */
export interface StoreServerStats { connections: number; refused: number; timedOut: number; oversized: number; badToken: number }

export class StoreServer {
  private readonly server: Server;
  private readonly kv = new Map<string, Buffer>();
  private bytes = 0;
  private readonly conns = new Set<Conn>();
  private readonly o: Required<StoreServerOptions>;
  private readonly tokenDigest: Buffer;
  readonly stats: StoreServerStats = { connections: 0, refused: 0, timedOut: 0, oversized: 0, badToken: 0 };

  constructor(o: StoreServerOptions) {
    this.o = { ...STORE_DEFAULTS, ...o };
    this.tokenDigest = digest(o.token);
    this.server = createServer({ noDelay: true }, (s) => this.accept(s));
    this.server.maxConnections = this.o.maxConnections;
  }

  /** Listens on host:port; resolves the port. Rejects with the listen error (EADDRINUSE, EADDRNOTAVAIL...). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.o.host, port: this.o.port, exclusive: true }, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  /** Stops listening and closes every connection. */
  close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  private accept(sock: Socket): void {
    const c: Conn = { sock, chunks: [], have: 0, need: -1, authed: false, timer: null, pending: null, queue: [] };
    this.conns.add(c);
    this.stats.connections++;
    // A flood of silent connections cannot crowd out the ranks: the oldest unauthenticated goes.
    const waiting = [...this.conns].filter((x) => !x.authed);
    if (waiting.length > this.o.maxUnauthenticated) { this.stats.timedOut++; this.kill(waiting[0]); }
    sock.on('error', () => { /* reset by peer: 'close' follows */ });
    sock.on('close', () => { this.drop(c); });
    sock.on('data', (d) => this.onData(c, d));
    // The hello deadline: a connection that says nothing (or too little) is closed.
    c.timer = setTimeout(() => { this.stats.timedOut++; this.kill(c); }, this.o.helloTimeoutMs);
  }

  private drop(c: Conn): void {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.pending = null;
    c.chunks = [];
    c.queue = [];
    this.conns.delete(c);
  }

  private kill(c: Conn): void {
    this.drop(c);
    c.sock.destroy();
  }

  private refuse(c: Conn, message: string): void {
    this.stats.refused++;
    const s = c.sock;
    this.drop(c);
    s.end(frame(1, [message]));
    s.destroySoon();
    setTimeout(() => s.destroy(), 1000).unref();
  }

  private onData(c: Conn, d: Buffer): void {
    if (!this.conns.has(c)) return;
    c.chunks.push(d);
    c.have += d.length;
    for (;;) {
      if (c.need < 0) {
        if (c.have < 4) break;
        const head = c.chunks.length === 1 ? c.chunks[0] : Buffer.concat(c.chunks, c.have);
        c.chunks = [head];
        const len = head.readUInt32LE(0);
        const cap = c.authed ? 2 * this.o.maxValueBytes + 65_536 : MAX_HELLO_FRAME;
        if (len < 1 || len > cap) {
          // Nothing is allocated for a frame we will not take.
          this.stats.oversized++;
          if (c.authed) this.refuse(c, `a request of ${len} bytes is larger than the store's limit of ${cap} bytes`);
          else this.kill(c);
          return;
        }
        c.need = len;
      }
      if (c.have < 4 + c.need) break;
      const all = c.chunks.length === 1 ? c.chunks[0] : Buffer.concat(c.chunks, c.have);
      const body = Buffer.from(all.subarray(4, 4 + c.need)); // own copy: the rest may be large and short-lived
      const rest = all.subarray(4 + c.need);
      c.chunks = rest.length ? [Buffer.from(rest)] : [];
      c.have = rest.length;
      c.need = -1;
      if (c.authed && c.timer) { clearTimeout(c.timer); c.timer = null; }
      if (!this.frameIn(c, body)) return;
    }
    // A partial frame of an authenticated connection must complete within frameTimeoutMs.
    if (c.authed && c.have > 0 && !c.timer) {
      c.timer = setTimeout(() => { this.stats.timedOut++; this.kill(c); }, this.o.frameTimeoutMs);
    }
  }

  /** Handles one whole frame; false when the connection was closed. */
  private frameIn(c: Conn, body: Buffer): boolean {
    const msg = parseBody(body);
    if (!c.authed) {
      if (!msg || msg.head !== Op.Hello || msg.fields.length !== 2 || msg.fields[0].toString('latin1') !== STORE_MAGIC) {
        this.stats.refused++;
        this.kill(c);
        return false;
      }
      if (!timingSafeEqual(digest(msg.fields[1].toString('latin1')), this.tokenDigest)) {
        this.stats.badToken++;
        this.refuse(c, 'wrong rendezvous token: every rank needs the job\'s token (--rdzv-token or PANSEG_RDZV_TOKEN, the same on every node)');
        return false;
      }
      if (c.timer) { clearTimeout(c.timer); c.timer = null; }
      c.authed = true;
      c.sock.write(frame(0, []));
      return true;
    }
    if (!msg) { this.refuse(c, 'malformed request'); return false; }
    if (c.pending) { c.queue.push(body); return true; }
    return this.handle(c, msg.head, msg.fields);
  }

  private handle(c: Conn, op: number, f: Buffer[]): boolean {
    const ok = (...fields: (string | Buffer)[]) => { c.sock.write(frame(0, fields)); return true; };
    const err = (m: string) => { c.sock.write(frame(1, [m])); return true; };
    const keyOf = (b: Buffer | undefined) => {
      if (!b || b.length > MAX_KEY_BYTES) return null;
      return b.toString('latin1');
    };
    const need = (n: number) => f.length === n && f.every((x, i) => i > 0 || keyOf(x) !== null);
    switch (op) {
      case Op.Set: {
        if (!need(2)) return err('malformed set');
        const e = this.put(keyOf(f[0])!, f[1]);
        return e ? err(e) : ok();
      }
      case Op.CompareSet: {
        if (!need(3)) return err('malformed compareSet');
        const key = keyOf(f[0])!;
        const cur = this.kv.get(key);
        if ((cur === undefined && f[1].length === 0) || (cur && cur.equals(f[1]))) {
          const e = this.put(key, f[2]);
          return e ? err(e) : ok(f[2]);
        }
        return ok(cur ?? f[1]);
      }
      case Op.Add: {
        if (!need(2) || f[1].length !== 8) return err('malformed add');
        const key = keyOf(f[0])!;
        const cur = this.kv.get(key);
        const text = cur?.toString('latin1') ?? '0';
        if (!/^-?\d+$/.test(text)) return err(`key '${key}' does not hold a number`);
        const n = BigInt.asIntN(64, BigInt(text) + f[1].readBigInt64LE(0));
        const e = this.put(key, Buffer.from(n.toString(), 'latin1'));
        return e ? err(e) : ok(int64(n));
      }
      case Op.Check: {
        const keys = this.keys(f);
        if (!keys) return err('malformed check');
        return ok(int64(keys.every((k) => this.kv.has(k)) ? 1n : 0n));
      }
      case Op.Get:
      case Op.Wait: {
        const keys = op === Op.Get ? (need(1) ? [keyOf(f[0])!] : null) : this.keys(f);
        if (!keys) return err('malformed request');
        const reply = () => { op === Op.Get ? ok(this.kv.get(keys[0])!) : ok(); };
        if (keys.every((k) => this.kv.has(k))) { reply(); return true; }
        c.pending = { keys, reply };
        return true;
      }
      case Op.Delete: {
        if (!need(1)) return err('malformed delete');
        const key = keyOf(f[0])!;
        const cur = this.kv.get(key);
        if (cur) { this.bytes -= key.length + cur.length; this.kv.delete(key); }
        return ok(int64(cur ? 1n : 0n));
      }
      case Op.NumKeys:
        return ok(int64(BigInt(this.kv.size)));
      default:
        this.refuse(c, `unknown request ${op}`);
        return false;
    }
  }

  private keys(f: Buffer[]): string[] | null {
    if (f.length < 1 || f.length > MAX_KEYS_PER_REQUEST || f.some((b) => b.length > MAX_KEY_BYTES)) return null;
    return f.map((b) => b.toString('latin1'));
  }

  /** Stores a value (within the caps) and wakes the waiters it completes; an error message or null. */
  private put(key: string, value: Buffer): string | null {
    if (value.length > this.o.maxValueBytes) return `a value of ${value.length} bytes for '${key}' is larger than the store's limit of ${this.o.maxValueBytes} bytes`;
    const old = this.kv.get(key);
    const bytes = this.bytes - (old ? key.length + old.length : 0) + key.length + value.length;
    if (bytes > this.o.maxStoreBytes) return `the store is full (${this.o.maxStoreBytes} bytes)`;
    this.kv.set(key, Buffer.from(value));
    this.bytes = bytes;
    for (const w of this.conns) {
      if (w.pending && w.pending.keys.includes(key) && w.pending.keys.every((k) => this.kv.has(k))) {
        const p = w.pending;
        w.pending = null;
        p.reply();
        this.drain(w);
      }
    }
    return null;
  }

  /** Runs the frames that queued behind a finished wait. */
  private drain(c: Conn): void {
    while (!c.pending && c.queue.length && this.conns.has(c)) {
      const msg = parseBody(c.queue.shift()!)!;
      if (!this.handle(c, msg.head, msg.fields)) return;
    }
  }
}

/** A store server running in a worker thread. */
export interface HostedStore {
  port: number;
  /** Stops the server (the worker ends). */
  close(): Promise<void>;
}

/**
 * Starts a StoreServer in a worker thread and resolves once it listens. Rejects with the listen
 * error's code and message (EADDRINUSE, EADDRNOTAVAIL...). The worker does not keep the process alive.
 */
export async function hostStore(o: StoreServerOptions): Promise<HostedStore> {
  const { Worker } = await import('node:worker_threads');
  const url = new URL(`./store-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);
  // From dist the worker is plain JS; under tsx (the tests) the thread first registers tsx's loader.
  const w = url.pathname.endsWith('.js')
    ? new Worker(url, { workerData: o })
    : new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`, { eval: true, workerData: o });
  const port = await new Promise<number>((resolve, reject) => {
    w.once('error', reject);
    w.once('exit', (code) => reject(Object.assign(new Error(`the store server's thread ended (exit code ${code})`), { code: '' })));
    w.once('message', (m: { port?: number; code?: string; message?: string }) => {
      if (m.port !== undefined) resolve(m.port);
      else reject(Object.assign(new Error(m.message), { code: m.code }));
    });
  }).catch(async (e) => { await w.terminate(); throw e; });
  w.removeAllListeners('exit');
  w.removeAllListeners('error');
  w.on('error', () => { /* the thread failed: clients see the connection close */ });
  let exited = false;
  w.on('exit', () => { exited = true; });
  w.unref();
  return {
    port,
    close: () => (exited ? Promise.resolve() : new Promise<void>((r) => {
      w.ref(); // keeps the caller's event loop alive until the thread has ended
      w.once('exit', () => r());
      w.postMessage('close');
      setTimeout(() => void w.terminate(), 2000).unref();
    })),
  };
}
