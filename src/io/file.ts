// Positional reads from a file handle, so weight files of any size are read piece by piece
// and every read is checked against the file's real size before anything is allocated.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { constants } from 'node:buffer';

/** Throws a PansegError naming the public op and the file. */
export type Fail = (msg: string) => never;

const CHUNK = 1 << 30; // readSync reads at most 2 GiB - 1 per call

/** Explains an fs error code in words for messages. */
export function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
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
