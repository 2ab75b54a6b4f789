// Flag parsing in-process (the spawned CLI tests in cli.test.ts cover exit codes and stderr):
// typed flags, --config files (JSON/YAML, flags win), and the UsageError texts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closest, type CommandSpec, editDistance, helpText, parse, required, UsageError } from '../../src/cli/args.js';
import { resolveModelDir } from '../../src/cli/model-dir.js';

const tmp = mkdtempSync(join(tmpdir(), 'panseg-args-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const spec: CommandSpec = {
  name: 'train', summary: 'train a PAN', usage: 'panseg train [options]',
  flags: [
    { name: 'batch-size', type: 'int', desc: 'images per step', default: 8 },
    { name: 'lr', type: 'number', desc: 'learning rate' },
    { name: 'optimizer', type: 'string', desc: 'optimizer', choices: ['sgd', 'adamw'], default: 'sgd' },
    { name: 'quiet', type: 'boolean', desc: 'no progress bar' },
    { name: 'tta-scales', type: 'list', desc: 'scales' },
    { name: 'out', type: 'string', desc: 'output directory', short: 'o' },
  ],
  examples: ['panseg train --out runs/x'],
};

const usage = (argv: string[], message: string): void => {
  assert.throws(() => parse(spec, argv), (e: unknown) => e instanceof UsageError && e.message === message);
};
const file = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

describe('parse', () => {
  it('converts typed flags to camelCase options over the defaults', () => {
    const r = parse(spec, ['--batch-size', '4', '--lr=0.5', '--optimizer', 'adamw', '--quiet', '--tta-scales', '0.75, 1,1.25', '-o', 'runs/x']);
    assert.deepEqual(r, { opts: { batchSize: 4, optimizer: 'adamw', lr: 0.5, quiet: true, ttaScales: ['0.75', '1', '1.25'], out: 'runs/x' }, positionals: [], help: false });
    assert.deepEqual(parse(spec, []).opts, { batchSize: 8, optimizer: 'sgd' });
    assert.equal(parse(spec, ['-h']).help, true);
    assert.equal(parse(spec, ['--out', 'x', '--help', '--batch-size', 'not-checked']).help, true);
  });

  it('rejects bad values with the flag name, expectation and value', () => {
    usage(['--batch-size', 'x'], "--batch-size expects an integer, got 'x'");
    usage(['--batch-size', '2.5'], "--batch-size expects an integer, got '2.5'");
    usage(['--batch-size', ''], "--batch-size expects an integer, got ''");
    usage(['--lr', ' '], "--lr expects a number, got ' '");
    usage(['--lr', 'Infinity'], "--lr expects a number, got 'Infinity'");
    usage(['--optimizer', 'rmsprop'], "--optimizer expects one of sgd, adamw, got 'rmsprop'");
  });

  it('rejects unknown flags, missing values and stray positionals', () => {
    usage(['--bogus'], "unknown option '--bogus' for 'panseg train' (see panseg train --help)");
    usage(['--out'], "Option '-o, --out <value>' argument missing");
    usage(['extra'], "'panseg train' takes no positional arguments, got 'extra' (see panseg train --help)");
    assert.deepEqual(parse({ ...spec, positionals: true }, ['a.png', '--quiet', 'b.png']).positionals, ['a.png', 'b.png']);
  });

  it('reads --config (JSON or YAML; kebab, camel or snake keys); flags win', () => {
    const json = file('c.json', JSON.stringify({ 'batch-size': 2, lr: 0.1, tta_scales: [1, 2] }));
    assert.deepEqual(parse(spec, ['--config', json, '--lr', '0.2']).opts, { batchSize: 2, optimizer: 'sgd', lr: 0.2, ttaScales: ['1', '2'] });
    const yaml = file('c.yaml', 'batchSize: 16\noptimizer: adamw\nquiet: true\n');
    assert.deepEqual(parse(spec, ['--config', yaml]).opts, { batchSize: 16, optimizer: 'adamw', quiet: true });
  });

  it('names the --config file in every config error', () => {
    const missing = join(tmp, 'none.json');
    usage(['--config', missing], `--config ${missing}: file not found or unreadable`);
    const bad = file('bad.json', '{"lr": ');
    assert.throws(() => parse(spec, ['--config', bad]), (e: unknown) => e instanceof UsageError && e.message.startsWith(`--config ${bad}: `) && !e.message.includes('\n'));
    const list = file('list.yaml', '- 1\n- 2\n');
    usage(['--config', list], `--config ${list}: expected a mapping of option names to values`);
    const unknown = file('unknown.json', '{"epochz": 3}');
    usage(['--config', unknown], `--config ${unknown}: unknown option 'epochz' for 'panseg train'`);
    const wrong = file('wrong.json', '{"batch_size": true}');
    usage(['--config', wrong], `--config ${wrong}: batch-size expects an integer, got 'true'`);
    const choice = file('choice.yaml', 'optimizer: lbfgs\n');
    usage(['--config', choice], `--config ${choice}: optimizer expects one of sgd, adamw, got 'lbfgs'`);
  });

  it('required() names the missing flag', () => {
    assert.equal(required({ out: 'x' }, 'out', 'out', 'train'), 'x');
    assert.throws(() => required({}, 'dataRoot', 'data-root', 'train'), { message: "'panseg train' needs --data-root (see panseg train --help)" });
    assert.throws(() => required({ out: '' }, 'out', 'out', 'train'), UsageError);
  });
});

describe('helpText', () => {
  it('lists every flag with its type or choices and default, then --config, --help and the examples', () => {
    const h = helpText(spec);
    assert.match(h, /^panseg train: train a PAN\n\nUsage: panseg train \[options\]\n\nOptions:\n/);
    assert.match(h, /--batch-size <int> +images per step \(default: 8\)/);
    assert.match(h, /--optimizer <sgd\|adamw> +optimizer \(default: sgd\)/);
    assert.match(h, /--quiet +no progress bar/);
    assert.match(h, /-o, --out <string> +output directory/);
    assert.match(h, /--config <string> +JSON or YAML file with options \(flags win\)/);
    assert.match(h, /-h, --help +show this help/);
    assert.match(h, /\nExamples:\n {2}panseg train --out runs\/x\n$/);
  });
});

describe('did you mean', () => {
  it('suggests the closest flag for a mistyped one, in flags and in --config keys', () => {
    usage(['--batchsize', '4'], "unknown option '--batchsize' for 'panseg train'; did you mean --batch-size? (see panseg train --help)");
    usage(['--bach-size=4'], "unknown option '--bach-size' for 'panseg train'; did you mean --batch-size? (see panseg train --help)");
    usage(['--optimiser', 'sgd'], "unknown option '--optimiser' for 'panseg train'; did you mean --optimizer? (see panseg train --help)");
    usage(['--tta-scale', '1'], "unknown option '--tta-scale' for 'panseg train'; did you mean --tta-scales? (see panseg train --help)");
    usage(['--helo'], "unknown option '--helo' for 'panseg train'; did you mean --help? (see panseg train --help)");
    usage(['--zzzzzz'], "unknown option '--zzzzzz' for 'panseg train' (see panseg train --help)");
    const cfg = file('typo.yaml', 'batchSze: 4\n');
    usage(['--config', cfg], `--config ${cfg}: unknown option 'batchSze' for 'panseg train'; did you mean batch-size?`);
  });

  it('closest() takes typos, swaps, other separators and unique prefixes; not unrelated words', () => {
    assert.equal(closest('trian', ['train', 'eval', 'predict']), 'train');
    assert.equal(closest('pred', ['train', 'eval', 'predict']), 'predict');
    assert.equal(closest('batch_size', ['batch-size', 'lr']), 'batch-size');
    assert.equal(closest('evaluate', ['train', 'eval', 'predict']), undefined);
    assert.equal(closest('serve', ['train', 'eval']), undefined);
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('ab', 'ba'), 1);
  });
});

describe('resolveModelDir', () => {
  it('a model directory as it is; a run folder: checkpoints/best, else last, saying so; a Hub name untouched', () => {
    const model = join(tmp, 'm');
    mkdirSync(model, { recursive: true });
    writeFileSync(join(model, 'config.json'), '{}');
    const said: string[] = [];
    const say = (l: string) => said.push(l);
    assert.equal(resolveModelDir(model, say), model);
    const run = join(tmp, 'run');
    mkdirSync(join(run, 'checkpoints', 'last'), { recursive: true });
    writeFileSync(join(run, 'config.json'), '{}'); // train saves its flags there: still a run folder
    writeFileSync(join(run, 'checkpoints', 'last', 'config.json'), '{}');
    assert.equal(resolveModelDir(run, say), join(run, 'checkpoints', 'last'));
    mkdirSync(join(run, 'checkpoints', 'best'), { recursive: true });
    writeFileSync(join(run, 'checkpoints', 'best', 'config.json'), '{}');
    assert.equal(resolveModelDir(run, say), join(run, 'checkpoints', 'best'));
    assert.deepEqual(said, [
      `--model ${run} is a training run; using its last checkpoint (it has no best), ${join(run, 'checkpoints', 'last')}`,
      `--model ${run} is a training run; using its best checkpoint, ${join(run, 'checkpoints', 'best')}`,
    ]);
    assert.equal(resolveModelDir('org/name', say), 'org/name');
    const empty = join(tmp, 'empty-run');
    mkdirSync(join(empty, 'checkpoints'), { recursive: true });
    assert.throws(() => resolveModelDir(empty), (e: unknown) => e instanceof UsageError && /is a training run without a saved model yet/.test(e.message));
  });
});
