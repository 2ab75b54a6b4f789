// The progress bar off a TTY (CI logs, pipes): periodic lines, and the final line printed exactly once,
// with the fields finish() adds (or the last update's).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressBar } from '../../src/common/progress.js';

function sink(tty = false): { stream: NodeJS.WriteStream; text: () => string } {
  let out = '';
  const stream = { isTTY: tty, write: (s: string) => { out += s; return true; } } as unknown as NodeJS.WriteStream;
  return { stream, text: () => out };
}

describe('ProgressBar off a TTY', () => {
  it('prints the final line once, with the fields finish() gives', () => {
    const s = sink();
    const bar = new ProgressBar('val', 3, { stream: s.stream, lineIntervalMs: 0 });
    for (let i = 1; i <= 3; i++) bar.update(i, { loss: '0.5' });
    bar.finish({ mIoU: '0.7' });
    const lines = s.text().trimEnd().split('\n');
    assert.equal(lines.filter((l) => l.includes('3/3')).length, 1, s.text());
    assert.match(lines.at(-1)!, /^val █+ 3\/3 \[.*\] mIoU 0\.7$/);
    assert.deepEqual(lines.slice(0, -1).map((l) => l.split(' ')[2]), ['1/3', '2/3']);
  });

  it('keeps the last update fields when finish() has none; silent prints nothing', () => {
    const s = sink();
    const bar = new ProgressBar('predict', 2, { stream: s.stream });
    bar.update(1);
    bar.update(2, { 'img/s': 3 });
    bar.finish();
    assert.match(s.text(), /^predict █+ 2\/2 \[.*\] img\/s 3\n$/);
    const q = sink();
    const quiet = new ProgressBar('x', 1, { stream: q.stream, silent: true });
    quiet.update(1);
    quiet.finish();
    assert.equal(q.text(), '');
  });

  it('on a TTY redraws in place and ends with one newline', () => {
    const s = sink(true);
    const bar = new ProgressBar('e', 2, { stream: s.stream });
    bar.update(1);
    bar.update(2);
    bar.finish();
    assert.equal(s.text().split('\n').length, 2);
    assert.ok(s.text().startsWith('\r\x1b[2K'));
  });
});
