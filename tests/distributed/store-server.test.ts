// The rendezvous store server (src/distributed/store-server.ts) in this process, against a raw
// client: the greeting and token, the deadlines, the caps on lengths, values and silent
// connections, and the key-value semantics the native client (PansegStore) relies on.
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { frame, Op, parseBody, STORE_MAGIC, StoreServer, type StoreServerOptions } from '../../src/distributed/store-server.js';

const TOKEN = 'job-token-123';
let server: StoreServer | null = null;
afterEach(async () => { await server?.close(); server = null; });

async function start(o: Partial<StoreServerOptions> = {}): Promise<number> {
  server = new StoreServer({ host: '127.0.0.1', port: 0, token: TOKEN, helloTimeoutMs: 400, frameTimeoutMs: 400, ...o });
  return server.listen();
}

/** A raw client: sends bytes, reads whole reply frames, and notes when the server closes it. */
class Client {
  readonly sock: Socket;
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closedAt: number | null = null;
  readonly openedAt = performance.now();
  constructor(port: number) {
    this.sock = connect({ host: '127.0.0.1', port });
    this.sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.wake(); });
    this.sock.on('close', () => { this.closedAt = performance.now(); this.wake(); });
    this.sock.on('error', () => {});
  }
  private wake(): void { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
  send(b: Buffer): this { this.sock.write(b); return this; }
  /** The next reply, or null when the connection closed first. */
  async reply(ms = 3000): Promise<{ status: number; fields: Buffer[] } | null> {
    const until = performance.now() + ms;
    for (;;) {
      if (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32LE(0)) {
        const n = this.buf.readUInt32LE(0);
        const body = this.buf.subarray(4, 4 + n);
        this.buf = this.buf.subarray(4 + n);
        const m = parseBody(body)!;
        return { status: m.head, fields: m.fields };
      }
      if (this.closedAt !== null) return null;
      if (performance.now() > until) throw new Error('no reply');
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
  }
  async closed(ms = 3000): Promise<number> {
    const until = performance.now() + ms;
    while (this.closedAt === null && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.ok(this.closedAt !== null, 'the server kept the connection open');
    return this.closedAt - this.openedAt;
  }
  async hello(token = TOKEN): Promise<this> {
    const r = await this.send(frame(Op.Hello, [STORE_MAGIC, token])).reply();
    assert.equal(r?.status, 0);
    return this;
  }
  async call(op: number, ...fields: (string | Buffer)[]): Promise<{ status: number; fields: Buffer[] } | null> {
    return this.send(frame(op, fields)).reply();
  }
}
const i64 = (n: number) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; };

describe('rendezvous store server', () => {
  it('serves set, get (waiting for the key), add, check, wait, delete and compareSet to a client with the token', async () => {
    const port = await start();
    const a = await new Client(port).hello();
    const b = await new Client(port).hello();
    const pending = b.call(Op.Get, 'k'); // waits until a sets it
    await new Promise((r) => setTimeout(r, 50));
    assert.equal((await a.call(Op.Set, 'k', 'v1'))?.status, 0);
    assert.equal((await pending)?.fields[0].toString(), 'v1');
    assert.equal((await a.call(Op.Add, 'n', i64(5)))?.fields[0].readBigInt64LE(0), 5n);
    assert.equal((await b.call(Op.Add, 'n', i64(-2)))?.fields[0].readBigInt64LE(0), 3n);
    assert.equal((await a.call(Op.Get, 'n'))?.fields[0].toString(), '3', 'counters read back as decimal text, as c10d stores them');
    assert.equal((await a.call(Op.Check, 'k', 'n'))?.fields[0].readBigInt64LE(0), 1n);
    assert.equal((await a.call(Op.Check, 'k', 'missing'))?.fields[0].readBigInt64LE(0), 0n);
    const waiting = b.call(Op.Wait, 'x', 'y');
    await a.call(Op.Set, 'x', '1');
    await a.call(Op.Set, 'y', '2');
    assert.equal((await waiting)?.status, 0);
    assert.equal((await a.call(Op.CompareSet, 'c', '', 'first'))?.fields[0].toString(), 'first');
    assert.equal((await a.call(Op.CompareSet, 'c', 'wrong', 'second'))?.fields[0].toString(), 'first');
    assert.equal((await a.call(Op.Delete, 'k'))?.fields[0].readBigInt64LE(0), 1n);
    assert.equal((await a.call(Op.NumKeys))?.fields[0].readBigInt64LE(0), 4n);
    a.sock.destroy(); b.sock.destroy();
  });

  it('closes a connection whose first frame is not a greeting, without answering or writing the key', async () => {
    const port = await start();
    const s = new Client(port).send(frame(Op.Set, ['stranger/key', 'value']));
    assert.equal(await s.reply(), null);
    const g = new Client(port).send(Buffer.from('\x00\x00\x00\x05garbage that is not a frame at all'));
    assert.equal(await g.reply(), null);
    const a = await new Client(port).hello();
    assert.equal((await a.call(Op.Check, 'stranger/key'))?.fields[0].readBigInt64LE(0), 0n);
    a.sock.destroy();
    assert.equal(server!.stats.refused + server!.stats.oversized, 2);
  });

  it('refuses a wrong token with a one-line reason, and the connection cannot write keys after it', async () => {
    const port = await start();
    const c = new Client(port).send(frame(Op.Hello, [STORE_MAGIC, 'guess'])).send(frame(Op.Set, ['k', 'v']));
    const r = await c.reply();
    assert.equal(r?.status, 1);
    assert.match(r!.fields[0].toString(), /^wrong rendezvous token: every rank needs the job's token \(--rdzv-token or PANSEG_RDZV_TOKEN, the same on every node\)$/);
    await c.closed();
    const a = await new Client(port).hello();
    assert.equal((await a.call(Op.NumKeys))?.fields[0].readBigInt64LE(0), 0n);
    a.sock.destroy();
  });

  it('drops a 12-byte partial prefix at the greeting deadline while other clients are served at once', async () => {
    const port = await start({ helloTimeoutMs: 500 });
    const partial = new Client(port).send(Buffer.concat([Buffer.from([16, 0, 0, 0, Op.Hello]), Buffer.from([14, 0, 0, 0]), Buffer.from('pan')]));
    const a = await new Client(port).hello();
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await a.call(Op.Add, 'n', i64(1));
    assert.ok(performance.now() - t0 < 400, 'requests were answered while the partial frame was pending');
    const ms = await partial.closed();
    assert.ok(ms >= 450 && ms < 1500, `closed after ${ms.toFixed(0)} ms`);
    a.sock.destroy();
  });

  it('drops an authenticated connection whose frame stops halfway, after the frame deadline', async () => {
    const port = await start({ frameTimeoutMs: 300 });
    const a = await new Client(port).hello();
    a.send(frame(Op.Set, ['k', 'v']).subarray(0, 9));
    const t0 = performance.now();
    await a.closed();
    assert.ok(performance.now() - t0 < 1500);
  });

  it('refuses a 512 MiB length prefix before allocating it, and values above the cap', async () => {
    const port = await start({ maxValueBytes: 1 << 20 });
    const rss0 = process.memoryUsage().rss;
    const pre = new Client(port).send(Buffer.concat([Buffer.from([0, 0, 0, 0x20]), Buffer.alloc(8)]));
    assert.ok(await pre.closed() < 1000);
    const a = await new Client(port).hello();
    const r = await a.send(Buffer.concat([Buffer.from([0, 0, 0, 0x20, Op.Set]), Buffer.alloc(64)])).reply();
    assert.equal(r?.status, 1);
    assert.match(r!.fields[0].toString(), /^a request of 536870912 bytes is larger than the store's limit of \d+ bytes$/);
    await a.closed();
    const b = await new Client(port).hello();
    const big = await b.call(Op.Set, 'big', Buffer.alloc((1 << 20) + 1));
    assert.equal(big?.status, 1);
    assert.match(big!.fields[0].toString(), /^a value of 1048577 bytes for 'big' is larger than the store's limit of 1048576 bytes$/);
    assert.ok(process.memoryUsage().rss - rss0 < 64 << 20, `RSS grew by ${((process.memoryUsage().rss - rss0) / 2 ** 20).toFixed(0)} MiB`);
    b.sock.destroy();
  });

  it('caps the whole store', async () => {
    const port = await start({ maxValueBytes: 1000, maxStoreBytes: 2500 });
    const a = await new Client(port).hello();
    assert.equal((await a.call(Op.Set, 'a', Buffer.alloc(1000)))?.status, 0);
    assert.equal((await a.call(Op.Set, 'b', Buffer.alloc(1000)))?.status, 0);
    const r = await a.call(Op.Set, 'c', Buffer.alloc(1000));
    assert.match(r!.fields[0].toString(), /^the store is full \(2500 bytes\)$/);
    assert.equal((await a.call(Op.Set, 'a', Buffer.alloc(10)))?.status, 0, 'replacing a value frees its bytes');
    assert.equal((await a.call(Op.Set, 'c', Buffer.alloc(1000)))?.status, 0);
    a.sock.destroy();
  });

  it('a flood of silent connections cannot keep a rank out', async () => {
    const port = await start({ helloTimeoutMs: 10_000, maxUnauthenticated: 16 });
    const flood = Array.from({ length: 40 }, () => new Client(port));
    await new Promise((r) => setTimeout(r, 300));
    const a = await new Client(port).hello();
    assert.equal((await a.call(Op.Set, 'k', 'v'))?.status, 0);
    assert.ok(flood.filter((c) => c.closedAt !== null).length >= 24, 'the oldest silent connections were closed');
    for (const c of flood) c.sock.destroy();
    a.sock.destroy();
  });
});
