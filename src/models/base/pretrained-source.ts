// Where a pretrained model comes from: a local save_pretrained directory, or else a Hugging Face
// Hub repo 'org/name' holding one (downloaded into the Hub's cache, see io/hub.ts).
import { existsSync } from 'node:fs';
import { describe, fail, PansegError } from '../../common/errors.js';
import { hubSnapshotSync, isRepoId } from '../../io/hub.js';

/** Options for loading from the Hub. */
export interface PretrainedSourceOptions {
  /** Branch, tag or commit of a Hub repo. Default 'main'. Ignored for a local directory. */
  revision?: string;
}

/**
 * `dirOrRepo` itself when it exists; otherwise, for 'org/name', the cached Hub snapshot folder with
 * config.json and model.safetensors (and panseg.json when the repo has one).
 */
export function pretrainedDir(dirOrRepo: string, o: PretrainedSourceOptions = {}, op = 'fromPretrained'): string {
  if (typeof dirOrRepo !== 'string' || existsSync(dirOrRepo) || !isRepoId(dirOrRepo)) {
    if (o.revision !== undefined && typeof dirOrRepo === 'string' && existsSync(dirOrRepo)) fail(op, `revision applies to Hub repos, but ${dirOrRepo} is a local directory; drop revision`);
    return dirOrRepo;
  }
  if (o.revision !== undefined && (typeof o.revision !== 'string' || !o.revision)) fail(op, `expected a branch, tag or commit hash for revision but received ${describe(o.revision)}`);
  try {
    return hubSnapshotSync(dirOrRepo, { files: ['config.json', 'model.safetensors'], optional: ['panseg.json'], revision: o.revision, op });
  } catch (e) {
    if (!(e instanceof PansegError)) throw e;
    // 'runs/best' that does not exist also reads as a repo id: say both.
    const msg = e.message.startsWith(`${op}: `) ? e.message.slice(op.length + 2) : e.message;
    return fail(op, `${dirOrRepo} is not a local directory, and as a Hugging Face Hub repo: ${msg}`);
  }
}
