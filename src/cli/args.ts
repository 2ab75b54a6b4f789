// Flag parsing shared by all subcommands: typed flags from a table, --help text from the same
// table, and a JSON or YAML --config file whose values the flags override.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { PansegError } from '../common/errors.js';

export type FlagType = 'string' | 'int' | 'number' | 'boolean' | 'list';

export interface Flag {
  name: string;
  type: FlagType;
  desc: string;
  default?: string | number | boolean;
  /** Allowed values for string flags. */
  choices?: readonly string[];
  short?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  flags: Flag[];
  examples?: string[];
  /** Accept positional arguments. */
  positionals?: boolean;
}

/** A user mistake: printed as one line, exit code 2. */
export class UsageError extends PansegError {
  override name = 'UsageError';
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate closest to a mistyped `word` (case and '-'/'_' ignored), if close enough to be a typo:
 * at most 1 edit for short words, up to a third of the length for long ones; a candidate that starts with the word also counts.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase().replace(/_/g, '-');
  const w = norm(word);
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const n = norm(c);
    const d = n === w.replace(/-/g, '') || n.replace(/-/g, '') === w.replace(/-/g, '') ? 0.5 : editDistance(w, n);
    if (d < bestD) { best = c; bestD = d; }
  }
  if (best !== undefined && bestD <= Math.max(1, Math.floor(w.length / 3))) return best;
  const prefixed = w.length >= 3 ? candidates.filter((c) => norm(c).startsWith(w)) : [];
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** ` did you mean X?` for a mistyped `word`, or ''. */
export function didYouMean(word: string, candidates: readonly string[], show: (c: string) => string = (c) => c): string {
  const c = closest(word, candidates);
  return c === undefined ? '' : `; did you mean ${show(c)}?`;
}

export function helpText(spec: CommandSpec): string {
  const lines = [`panseg ${spec.name}: ${spec.summary}`, '', `Usage: ${spec.usage}`, '', 'Options:'];
  const all = [...spec.flags, { name: 'config', type: 'string', desc: 'JSON or YAML file with options (flags win)' } as Flag, { name: 'help', type: 'boolean', desc: 'show this help', short: 'h' } as Flag];
  const left = all.map((f) => `  ${f.short ? `-${f.short}, ` : ''}--${f.name}${f.type === 'boolean' ? '' : ` <${f.choices ? f.choices.join('|') : f.type}>`}`);
  const width = Math.min(44, Math.max(...left.map((l) => l.length)) + 2);
  all.forEach((f, i) => {
    const def = f.default !== undefined ? ` (default: ${f.default})` : '';
    lines.push(`${left[i].padEnd(width)}${left[i].length >= width ? `\n${' '.repeat(width)}` : ''}${f.desc}${def}`);
  });
  if (spec.examples?.length) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return `${lines.join('\n')}\n`;
}

/** Number() reads '' and '  ' as 0 and true as 1; a flag value must spell a number. */
const toNumber = (raw: unknown): number => (typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN);

function convert(f: Flag, raw: unknown, from: string): unknown {
  const bad = (what: string): never => { throw new UsageError(`${from}${f.name} expects ${what}, got '${String(raw)}'`); };
  switch (f.type) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === 'false') return raw === 'true';
      return bad('true or false');
    case 'int': {
      const n = typeof raw === 'number' ? raw : toNumber(raw);
      return Number.isInteger(n) ? n : bad('an integer');
    }
    case 'number': {
      const n = typeof raw === 'number' ? raw : toNumber(raw);
      return Number.isFinite(n) ? n : bad('a number');
    }
    case 'list':
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw).split(',').map((s) => s.trim()).filter(Boolean);
    default: {
      const s = String(raw);
      if (f.choices && !f.choices.includes(s)) bad(`one of ${f.choices.join(', ')}`);
      return s;
    }
  }
}

export interface Parsed {
  opts: Record<string, unknown>;
  positionals: string[];
  help: boolean;
}

/** Parses argv for `spec`; options are returned camelCased (`--batch-size` -> batchSize). */
export function parse(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } };
  for (const f of spec.flags) options[f.name] = { type: f.type === 'boolean' ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  let values: Record<string, unknown>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true }));
  } catch (e) {
    const names = [...spec.flags.map((f) => f.name), 'config', 'help'];
    const m = (e as Error).message.replace(/\. To specify a positional argument.*$/s, '')
      .replace(/^Unknown option '(.*)'$/, (_, opt: string) => `unknown option '${opt}' for 'panseg ${spec.name}'${didYouMean(opt.replace(/^-+/, '').split('=')[0], names, (c) => `--${c}`)} (see panseg ${spec.name} --help)`);
    throw new UsageError(m);
  }
  if (values.help) return { opts: {}, positionals, help: true };
  if (positionals.length && !spec.positionals) throw new UsageError(`'panseg ${spec.name}' takes no positional arguments, got '${positionals[0]}' (see panseg ${spec.name} --help)`);
  const opts: Record<string, unknown> = {};
  for (const f of spec.flags) if (f.default !== undefined) opts[camel(f.name)] = f.default;
  if (typeof values.config === 'string') {
    const file = values.config;
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch { throw new UsageError(`--config ${file}: file not found or unreadable`); }
    let cfg: unknown;
    try { cfg = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text); } catch (e) { throw new UsageError(`--config ${file}: ${(e as Error).message.split('\n')[0]}`); }
    if (!cfg || typeof cfg !== 'object' || Array.isArray(cfg)) throw new UsageError(`--config ${file}: expected a mapping of option names to values`);
    for (const [k, v] of Object.entries(cfg as Record<string, unknown>)) {
      const f = spec.flags.find((x) => x.name === k || camel(x.name) === k || x.name.replace(/-/g, '_') === k);
      if (!f) throw new UsageError(`--config ${file}: unknown option '${k}' for 'panseg ${spec.name}'${didYouMean(k, spec.flags.map((x) => x.name))}`);
      opts[camel(f.name)] = convert(f, v, `--config ${file}: `);
    }
  }
  for (const f of spec.flags) if (values[f.name] !== undefined) opts[camel(f.name)] = convert(f, values[f.name], '--');
  return { opts, positionals, help: false };
}

/** Throws a UsageError naming the missing flag. */
export function required<T>(opts: Record<string, unknown>, key: string, flag: string, cmd: string): T {
  if (opts[key] === undefined || opts[key] === '') throw new UsageError(`'panseg ${cmd}' needs --${flag} (see panseg ${cmd} --help)`);
  return opts[key] as T;
}
