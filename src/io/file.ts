// Positional reads from a file handle, so weight files of any size are read piece by piece
// and every read is checked against the file's real size before anything is allocated;
// and durable writes, so a crash, kill -9 or power loss leaves a file's old or new content, never a mix.
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { type FileHandle, mkdir, open, rename, rm } from 'node:fs/promises';
import { constants } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';

/** Throws a PansegError naming the public op and the file. */
export type Fail = (msg: string) => never;

const CHUNK = 1 << 30; // readSync reads at most 2 GiB - 1 per call

/** Explains an fs error code in words for messages. */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ENOSPC') return 'no space left on device';
  if (code === 'EDQUOT') return 'disk quota exceeded';
  if (code === 'EROFS') return 'read-only file system';
  return (e as Error)?.message ?? String(e);
}

export class RandomAccessFile {
  readonly size: number;
  private fd: number | null;

  constructor(path: string, private readonly bad: Fail) {
    let fd: number;
    try { fd = openSync(path, 'r'); } catch (e) { bad(ioReason(e)); }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) bad(st.isDirectory() ? 'is a directory, not a file' : 'is not a regular file');
      this.size = st.size;
    } catch (e) { closeSync(fd); throw e; }
    this.fd = fd;
  }

  /** Reads exactly `length` bytes at `position`; `what` names the part for the truncation message. */
  read(position: number, length: number, what: string): Buffer {
    if (this.fd === null) throw new Error('RandomAccessFile: read after close');
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > this.size) {
      this.bad(`${what} (bytes ${position}..${position + length}) runs past the end of the file (${this.size} bytes); the file is truncated or corrupt`);
    }
    if (length > constants.MAX_LENGTH) this.bad(`${what} needs ${length} bytes, more than the largest buffer Node can allocate (${constants.MAX_LENGTH})`);
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buf, done, Math.min(CHUNK, length - done), position + done);
      if (n === 0) this.bad(`${what} ends early: the file shrank while reading`);
      done += n;
    }
    return buf;
  }

  close(): void {
    if (this.fd !== null) { closeSync(this.fd); this.fd = null; }
  }
}

// Test hook (only with PANSEG_TEST=1): PANSEG_TEST_FAIL_WRITE_AFTER=N gives this process a disk with
// N free bytes: durable writes succeed until one would pass N bytes in total, and that one and every
// later one fail with ENOSPC, as on a full disk. For tests where a small tmpfs cannot be mounted.
let written = 0;
let budget: string | undefined;

/** Call before writing `bytes` bytes of a file that holds state; throws ENOSPC under the test hook. */
export function beforeDurableWrite(path: string, bytes: number): void {
  const env = process.env.PANSEG_TEST === '1' ? process.env.PANSEG_TEST_FAIL_WRITE_AFTER : undefined;
  if (env !== budget) [budget, written] = [env, 0]; // a new budget starts a new disk
  if (env === undefined) return;
  written += bytes;
  if (written <= Number(env)) return;
  written = Number.POSITIVE_INFINITY;
  throw Object.assign(new Error(`ENOSPC: no space left on device, write '${path}'`), { code: 'ENOSPC', path });
}

/** fsync a directory, so the renames and creations in it survive a power loss. A no-op where directories cannot be opened (Windows). */
export function syncDir(dir: string): void {
  let fd: number;
  try { fd = openSync(dir, 'r'); } catch { return; }
  try { fsyncSync(fd); } catch (e) {
    if (!dirSyncUnsupported(e)) throw e;
  } finally { closeSync(fd); }
}

/** Errors of fsync on a directory from file systems that do not support it. */
function dirSyncUnsupported(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EINVAL' || code === 'EISDIR' || code === 'EPERM';
}

/** fsync a file written by appends (a log), so what it holds survives a power loss. A missing file is fine. */
export function syncFile(path: string): void {
  let fd: number;
  try { fd = openSync(path, 'r+'); } catch { return; }
  try { fsyncSync(fd); } finally { closeSync(fd); }
}

/**
 * Writes `path` atomically and durably: a new temporary file beside it (exclusive create), written
 * and fsynced, renamed over `path`, then the directory fsynced. After a crash the file holds its old
 * or its new content. A failed write (a full disk) removes the temporary file and rethrows.
 */
export function writeFileDurable(path: string, data: string | Uint8Array): void {
  const tmp = tempPath(path);
  let fd: number | null = null;
  try {
    fd = openSync(tmp, 'wx', 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    beforeDurableWrite(path, buf.byteLength);
    for (let done = 0; done < buf.byteLength;) done += writeSync(fd, buf, done, Math.min(CHUNK, buf.byteLength - done));
    fsyncSync(fd);
    closeSync(fd);
    fd = null;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  syncDir(dirname(path));
}

/**
 * {@link writeFileDurable} for async code (pictures, pages, reports): the same temporary, fsync, rename
 * and directory fsync, off the event loop. Creates the parent folder first.
 * @example await writeFileDurableAsync('out/report/overlay.png', await encodePng(img))
 */
export async function writeFileDurableAsync(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = tempPath(path);
  let fh: FileHandle | null = null;
  try {
    fh = await open(tmp, 'wx', 0o644);
    beforeDurableWrite(path, typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.byteLength);
    await fh.writeFile(data);
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, path);
  } catch (e) {
    await fh?.close();
    await rm(tmp, { force: true });
    throw e;
  }
  let dh: FileHandle;
  try { dh = await open(dir, 'r'); } catch { return; } // as syncDir: directories cannot be opened everywhere
  try { await dh.sync(); } catch (e) {
    if (!dirSyncUnsupported(e)) throw e;
  } finally { await dh.close(); }
}

/** The temporary a durable write of `path` goes through (unique per call; {@link isWriteLeftover} knows it). */
function tempPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Whether a directory entry is a temporary left by an interrupted write (writeFileDurable, saveSafetensors, checkpoint and save_pretrained directories). */
export function isWriteLeftover(name: string): boolean {
  return /\.(tmp|partial)-\d+/.test(name) || /^\..+\.\d+\.[0-9a-f]+\.tmp$/.test(name);
}

/** Removes the leftovers of interrupted writes directly in `dir` (not below); returns their paths. */
export function removeWriteLeftovers(dir: string): string[] {
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const gone = names.filter(isWriteLeftover).map((f) => join(dir, f));
  for (const p of gone) rmSync(p, { recursive: true, force: true });
  return gone;
}
