// A one-line progress bar with ETA and live fields, redrawn in place on a TTY and
// printed as periodic lines elsewhere (CI logs, pipes).

export interface ProgressOptions {
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Non-TTY: print a line at most this often (ms). Default 10 s. */
  lineIntervalMs?: number;
  /** Disable output entirely. */
  silent?: boolean;
  width?: number;
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '--:--';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return h ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly t0 = performance.now();
  private lastLine = 0;
  private lastDraw = 0;
  private done = 0;
  /** Non-TTY: the fields of the last update, for the final line finish() prints. */
  private fields: Record<string, string | number> = {};

  constructor(readonly label: string, readonly total: number, private readonly o: ProgressOptions = {}) {
    this.stream = o.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Sets progress to `done` of total and redraws with `fields` (e.g. { loss: '0.41', lr: '0.01' }). */
  update(done: number, fields: Record<string, string | number> = {}): void {
    this.done = done;
    if (this.o.silent) return;
    const now = performance.now();
    const final = done >= this.total;
    if (this.tty) {
      if (!final && now - this.lastDraw < 100) return;
      this.lastDraw = now;
      this.stream.write(`\r\x1b[2K${this.render(fields)}`);
    } else {
      // The final line is left to finish(), which may add fields (a loss, a score): printed once, complete.
      this.fields = fields;
      if (!final && now - this.lastLine >= (this.o.lineIntervalMs ?? 10_000)) {
        this.lastLine = now;
        this.stream.write(`${this.render(fields)}\n`);
      }
    }
  }

  render(fields: Record<string, string | number> = {}): string {
    const elapsed = (performance.now() - this.t0) / 1000;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = this.o.width ?? 24;
    const filled = Math.round(frac * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const eta = frac > 0 ? (elapsed / frac) * (1 - frac) : Number.NaN;
    const extra = Object.entries(fields).map(([k, v]) => `${k} ${v}`).join(' | ');
    return `${this.label} ${bar} ${this.done}/${this.total} [${fmtTime(elapsed)}<${fmtTime(eta)}]${extra ? ` ${extra}` : ''}`;
  }

  /** Ends the bar: redraws it with `fields` and a newline (off a TTY: prints its last line, once; the last update's fields when none are given). */
  finish(fields: Record<string, string | number> = {}): void {
    if (this.o.silent) return;
    if (this.tty) this.stream.write(`\r\x1b[2K${this.render(fields)}\n`);
    else this.stream.write(`${this.render(Object.keys(fields).length ? fields : this.fields)}\n`);
  }
}
