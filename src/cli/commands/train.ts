import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PansegError } from '../../common/errors.js';
import { DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT, launch, workerEnv } from '../../distributed/index.js';
import { recoverCheckpoint } from '../../train/checkpoint.js';
import { LOGGERS } from '../../train/loggers.js';
import { writeTrainingReport } from '../../train/report.js';
import { prepareRunDir } from '../../train/run-dir.js';
import { train } from '../../train/train.js';
import { type CommandSpec, required, UsageError } from '../args.js';
import { archOptions, DATA_FLAGS, MODEL_FLAGS, recipeFromFlags, RUN_FLAGS, VAL_FRACTION_FLAG } from '../flags.js';
import { printMetrics } from '../output.js';

export const spec: CommandSpec = {
  name: 'train',
  summary: 'train a model (PAN, UNet, FPN, ...) on a dataset, with validation, checkpoints and an HTML report',
  usage: 'panseg train --dataset <layout> --data-root DIR --out DIR [options]',
  flags: [
    ...DATA_FLAGS,
    VAL_FRACTION_FLAG,
    { name: 'val-split', type: 'string', desc: "validation split ('none' to skip; not with --val-fraction or --split-file)", default: 'val' },
    { name: 'val-root', type: 'string', desc: 'separate validation folder (default: --data-root)' },
    ...MODEL_FLAGS,
    { name: 'encoder', type: 'string', desc: 'encoder name', default: 'resnet34' },
    { name: 'classes', type: 'int', desc: 'number of classes (default: from the dataset)' },
    { name: 'encoder-weights', type: 'string', desc: "pretrained encoder: a name ('imagenet', from the Hugging Face Hub cache) or a .pth/.safetensors path" },
    { name: 'model', type: 'string', desc: "start from a pretrained model: a directory, or a Hugging Face Hub repo 'org/name'" },
    { name: 'aux-weight', type: 'number', desc: 'weight of the auxiliary class-presence head loss (0 = no head)', default: 0 },
    { name: 'crop', type: 'int', desc: 'training crop size', default: 512 },
    { name: 'batch-size', type: 'int', desc: 'images per step', default: 8 },
    { name: 'epochs', type: 'int', desc: 'training epochs', default: 50 },
    { name: 'lr', type: 'number', desc: 'base learning rate (default 0.01 for sgd, 0.001 for adamw)' },
    { name: 'optimizer', type: 'string', desc: 'optimizer', choices: ['sgd', 'adamw'], default: 'sgd' },
    { name: 'schedule', type: 'string', desc: 'learning-rate schedule', choices: ['poly', 'cosine', 'step', 'constant'], default: 'poly' },
    { name: 'warmup-iters', type: 'int', desc: 'linear warmup steps', default: 0 },
    { name: 'loss', type: 'string', desc: "loss: ce, dice, focal or sums like 'ce+0.5*dice'", default: 'ce' },
    { name: 'label-smoothing', type: 'number', desc: 'cross-entropy label smoothing', default: 0 },
    { name: 'class-weights', type: 'list', desc: 'loss weight of each class, a comma list in class order, e.g. 1,2.5,0.8 (default: all 1)' },
    { name: 'momentum', type: 'number', desc: 'SGD momentum (default 0.9)' },
    { name: 'weight-decay', type: 'number', desc: 'weight decay (default 1e-4 for sgd, 1e-2 for adamw, decoupled)' },
    { name: 'scale-range', type: 'list', desc: 'random rescaling range before the crop, MIN,MAX (default 0.5,2)' },
    { name: 'color-jitter', type: 'number', desc: 'colour jitter strength for brightness, contrast and saturation, 0 to 1 (default 0: off)' },
    { name: 'channels-last', type: 'string', desc: 'keep activations and weights channels-last (faster oneDNN convolutions on CPU) (default true)', choices: ['true', 'false'] },
    { name: 'winograd', type: 'string', desc: "float32 3x3 stride-1 convolutions on oneDNN's Winograd kernels where the CPU has them (about 2x faster; false: ATen's direct kernels, as PyTorch) (default true)", choices: ['true', 'false'] },
    { name: 'fused-kernels', type: 'string', desc: "fused cross-entropy and BatchNorm+ReLU kernels where the CPU has AVX-512 (less memory traffic; false: ATen's op sequences, as PyTorch) (default true)", choices: ['true', 'false'] },
    { name: 'cuda-graphs', type: 'boolean', desc: 'record the whole training step in a CUDA graph once and replay it per batch: fewer kernel launches at small batches (needs --device cuda; not with --accumulate > 1, --freeze-encoder-epochs or several processes)' },
    { name: 'accumulate', type: 'int', desc: 'gradient accumulation steps', default: 1 },
    { name: 'freeze-encoder-epochs', type: 'int', desc: 'keep the encoder frozen for the first N epochs', default: 0 },
    { name: 'val-every', type: 'int', desc: 'validate every N epochs', default: 1 },
    { name: 'out', type: 'string', desc: 'run directory (checkpoints, metrics.jsonl, config.json, report.html): new or empty, unless --resume or --overwrite' },
    { name: 'resume', type: 'boolean', desc: 'continue the run in --out from <out>/checkpoints/last' },
    { name: 'overwrite', type: 'boolean', desc: "replace the run in --out (its checkpoints, logs and report; other files stay)" },
    { name: 'log', type: 'list', desc: `loggers besides metrics.jsonl (always written), a comma list: ${LOGGERS.join(', ')} (metrics.csv, events.out.tfevents.* in --out)` },
    { name: 'report-images', type: 'int', desc: 'worst validation images shown in report.html, which is rewritten after every validation', default: 6 },
    { name: 'max-steps', type: 'int', desc: 'stop after this many optimizer steps' },
    { name: 'quiet', type: 'boolean', desc: 'no progress bar' },
    { name: 'json', type: 'boolean', desc: 'print the final result as JSON' },
    // distributed (src/distributed): --batch-size is per process
    { name: 'nproc-per-node', type: 'int', desc: 'worker processes on this machine (data-parallel; threads per process = cores / N)', default: 1 },
    { name: 'nnodes', type: 'int', desc: 'machines in the job', default: 1 },
    { name: 'node-rank', type: 'int', desc: "this machine's index, 0..nnodes-1", default: 0 },
    { name: 'master-addr', type: 'string', desc: 'address of node 0 (serves the rendezvous)', default: DEFAULT_MASTER_ADDR },
    { name: 'master-port', type: 'int', desc: 'rendezvous port on node 0', default: DEFAULT_MASTER_PORT },
    { name: 'rdzv-token', type: 'string', desc: 'secret the rendezvous asks of every process, the same on every node; never saved to config.json. Default: PANSEG_RDZV_TOKEN (better: a flag shows in ps), else on one machine a random one' },
    { name: 'sync-bn', type: 'boolean', desc: 'SyncBatchNorm: BatchNorm statistics over all processes (for small per-process batches)' },
    { name: 'max-restarts', type: 'int', desc: 'when a worker fails, restart all workers from the last checkpoint up to N times (one machine)', default: 0 },
    ...RUN_FLAGS,
  ],
  examples: [
    'panseg train --dataset voc --data-root VOCdevkit/VOC2012 --encoder resnet50 --crop 512 --epochs 50 --out runs/voc',
    'panseg train --dataset folder --data-root data/shapes --split train --val-split val --encoder resnet18 --crop 128 --out runs/shapes',
    'panseg train --arch unet --arch-options \'{"decoderAttentionType":"scse"}\' --dataset camvid --data-root CamVid --crop 256 --out runs/camvid-unet',
    'panseg train --dataset voc --data-root VOCdevkit/VOC2012 --nproc-per-node 4 --batch-size 4 --sync-bn --out runs/voc4',
    'panseg train ... --out runs/voc --log tensorboard,csv   (then: tensorboard --logdir runs)',
    'panseg train --config runs/voc/config.json --out runs/voc-again   (replay a run: its config.json holds every flag it used)',
    'panseg train ... --nnodes 2 --node-rank 0 --nproc-per-node 8 --master-addr 10.0.0.1 --master-port 29500   (and --node-rank 1 on the second machine)',
  ],
};

/** Flags left out of the saved config.json: how this invocation treats --out, not what the run is. */
const NOT_SAVED = new Set(['resume', 'overwrite', 'rdzv-token']);
const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The flags this run was given (and their defaults), keyed by flag name: what `--config` reads back as the same options. */
export function savedFlags(o: Record<string, unknown>): Record<string, unknown> {
  const cfg: Record<string, unknown> = {};
  for (const f of spec.flags) {
    const val = o[camel(f.name)];
    if (NOT_SAVED.has(f.name) || val === undefined) continue;
    // Lists of numbers are saved as numbers; --config turns them back into the same list.
    cfg[f.name] = Array.isArray(val) && val.length && val.every((x) => String(x).trim() !== '' && Number.isFinite(Number(x))) ? val.map(Number) : val;
  }
  return cfg;
}

export async function run(o: Record<string, unknown>): Promise<void> {
  const out = required<string>(o, 'out', 'out', 'train');
  if (o.resume && o.overwrite) throw new UsageError('--resume continues the run in --out and --overwrite replaces it; give one of them');
  if (o.rdzvToken !== undefined) process.env.PANSEG_RDZV_TOKEN = o.rdzvToken as string; // the launcher and the workers read it there
  // Distributed: with --nproc-per-node/--nnodes this process only launches the workers, which run
  // this same command with RANK/WORLD_SIZE/... set (or srun/torchrun-style launchers set those).
  const nproc = (o.nprocPerNode as number | undefined) ?? 1;
  const nnodes = (o.nnodes as number | undefined) ?? 1;
  // RANK (our launcher, torchrun) makes this a worker; otherwise explicit launch flags win over SLURM's variables.
  const worker = process.env.RANK === undefined && (nproc > 1 || nnodes > 1) ? null : workerEnv();
  // A new run never lands on another: checked by this process, or by rank 0 of a distributed job.
  if (!o.resume && (!worker || worker.rank === 0)) {
    const removed = prepareRunDir(out, { overwrite: Boolean(o.overwrite) });
    if (removed.length) console.error(`train: --overwrite: removed the earlier run in ${out} (${removed.join(', ')})`);
  }
  if (!worker && (nproc > 1 || nnodes > 1)) {
    const maxRestarts = (o.maxRestarts as number | undefined) ?? 0;
    // Each restart resumes from rank 0's last complete checkpoint, which only node 0 can see.
    if (maxRestarts > 0 && nnodes > 1) throw new PansegError('train: --max-restarts works on one machine (--nnodes 1); on several, restart the job with --resume (a SLURM requeue, say)');
    const first = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
    const r = await launch({
      nprocPerNode: nproc, nnodes, nodeRank: o.nodeRank as number | undefined,
      masterAddr: o.masterAddr as string | undefined, masterPort: o.masterPort as number | undefined,
      threadsPerProcess: o.threads as number | undefined,
      maxRestarts,
      // A restart continues from the last checkpoint, or replaces the failed attempt's files when there is none.
      restartCommand: () => {
        if (o.resume) return first;
        const rest = first.filter((a) => a !== '--overwrite');
        return recoverCheckpoint(join(out, 'checkpoints', 'last')) ? [...rest, '--resume'] : [...rest, '--overwrite'];
      },
    });
    if (r.code !== 0) throw new PansegError(`train: worker rank ${r.failedRank} failed (${r.workers.find((w) => w.rank === r.failedRank)?.signal ?? `exit code ${r.code}`}); see its output above`);
    return;
  }
  const res = await train({
    ...recipeFromFlags(o, 'train'),
    model: o.model as string | undefined,
    // --model brings its own architecture; an explicit --arch is checked against it.
    arch: o.model && o.arch === 'pan' ? undefined : o.arch as string,
    ...(({ encoderOutputStride, decoderChannels, ...rest }) => ({ outputStride: encoderOutputStride as 8 | 16 | 32 | undefined, decoderChannels: decoderChannels as number | number[] | undefined, modelOptions: rest }))(archOptions(o)),
    out,
    distributed: worker ? { ...worker, syncBatchNorm: Boolean(o.syncBn) } : undefined,
    log: (o.log as string[] | undefined)?.join(','),
    report: o.reportImages as number,
    config: savedFlags(o),
  });
  if (res.distributed && res.distributed.rank !== 0) { // rank 0 writes the report
    res.model.dispose();
    return;
  }
  const report = await writeTrainingReport({
    model: res.model, outDir: out, dataset: res.valDataset ?? res.trainDataset, evaluation: res.lastEval, config: savedFlags(o), hyperparameters: res.hyperparameters, samples: o.reportImages as number,
    summary: {
      'training time': `${res.seconds.toFixed(0)} s`, 'data wait': `${(res.dataWaitFraction * 100).toFixed(1)}% of step time`,
      ...(res.distributed ? { processes: String(res.distributed.worldSize), 'gradient all-reduce wait': `${res.distributed.commWaitMsPerStep.toFixed(1)} ms per step (rank 0)` } : {}),
    },
  });
  // Only the checkpoints that exist are named; without validation there is no best/, and last/ is the model to use.
  const saved = ['best', 'last'].filter((n) => existsSync(join(out, 'checkpoints', n, 'config.json')));
  const validated = res.bestEpoch >= 0;
  if (o.json) {
    console.log(JSON.stringify({
      best_miou: validated ? res.bestMiou : null, best_epoch: validated ? res.bestEpoch : null, seconds: res.seconds, out, report,
      checkpoints: saved.map((n) => join(out, 'checkpoints', n)), skipped: res.skipped, history: res.history,
    }));
  } else {
    if (res.lastEval) printMetrics(res.lastEval, [...(res.valDataset ?? res.trainDataset).classes]);
    if (validated) console.log(`best val mIoU ${res.bestMiou.toFixed(4)} (epoch ${res.bestEpoch}) in ${res.seconds.toFixed(0)} s`);
    else console.log(`trained in ${res.seconds.toFixed(0)} s without validation${o.valSplit === 'none' ? ' (--val-split none)' : ''}; the model to use is ${join(out, 'checkpoints', 'last')}`);
    const ck = saved.length === 2 ? `${join(out, 'checkpoints')}/{best,last}` : saved.length ? join(out, 'checkpoints', saved[0]) : 'none written';
    console.log(`checkpoints: ${ck}   report: ${report}`);
  }
  res.model.dispose();
}
