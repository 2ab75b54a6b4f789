// A DOM-less well-formedness check for the SVG and HTML that reports and pages write.
import assert from 'node:assert/strict';

const VOID = new Set(['br', 'img', 'meta', 'link', 'input', 'hr']);

/**
 * Every tag closes in order and text holds no raw '<' or '>'. `html`: HTML's void elements
 * (br, img, ...) need no closing tag; in SVG/XML every element must close.
 */
export function assertBalanced(markup: string, html = false): void {
  const stack: string[] = [];
  const body = markup.replace(/<!DOCTYPE[^>]*>/i, '').replace(/<style>[\s\S]*?<\/style>/, '<style></style>');
  const re = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+(?:="[^"<>]*")?)*)\s*(\/?)>/g;
  let last = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    const between = body.slice(last, m.index);
    assert.ok(!/[<>]/.test(between), `raw < or > in text near: ${between.slice(0, 80)}`);
    last = re.lastIndex;
    const [, close, name, , selfClose] = m;
    if (selfClose || (html && VOID.has(name.toLowerCase()))) continue;
    if (close) assert.equal(stack.pop(), name, `closing </${name}> at ${m.index}`);
    else stack.push(name);
  }
  assert.ok(!/[<>]/.test(body.slice(last)), 'raw < or > after the last tag');
  assert.deepEqual(stack, [], 'unclosed tags');
}
