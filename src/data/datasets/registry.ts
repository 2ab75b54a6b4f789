// The dataset layouts by name. Plain data: a wrong name is answered with the valid ones.
import { fail } from '../../common/errors.js';
import { type CamvidOptions, openCamvid } from './camvid.js';
import { type CityscapesOptions, openCityscapes } from './cityscapes.js';
import type { Dataset } from './dataset.js';
import { type FolderOptions, openFolder } from './folder.js';
import { withLabelOptions } from './labels.js';
import { type VocOptions, openVoc } from './voc.js';

/** Options any layout accepts; each layout reads the ones it knows. `ignoreIndex` and `reduceZeroLabel` apply to all. */
export type DatasetOptions = VocOptions & CamvidOptions & CityscapesOptions & FolderOptions;

/** Layout name -> opener. */
export const DATASETS: Readonly<Record<string, (root: string, opts?: DatasetOptions) => Dataset>> = Object.freeze({
  voc: openVoc,
  camvid: openCamvid,
  cityscapes: openCityscapes,
  folder: openFolder,
});

/** The layout names: 'voc', 'camvid', 'cityscapes', 'folder'. */
export function datasetNames(): string[] {
  return Object.keys(DATASETS);
}

/**
 * Opens a dataset by layout name.
 * @param name 'voc', 'camvid', 'cityscapes' or 'folder'
 * @param root the dataset folder
 * @param opts `split` (default 'train'; for 'folder' all of images/), `ignoreIndex`, `reduceZeroLabel`, and layout-specific options
 * @example const ds = openDataset('voc', '/data/VOC2012', { split: 'val' })
 */
export function openDataset(name: string, root: string, opts: DatasetOptions = {}): Dataset {
  const open = Object.hasOwn(DATASETS, name) ? DATASETS[name] : undefined;
  if (!open) fail('openDataset', `unknown dataset '${name}'; expected one of ${datasetNames().map((n) => `'${n}'`).join(', ')}`);
  if (typeof root !== 'string' || !root) fail('openDataset', `expected a folder path for root but received ${JSON.stringify(root)}`);
  return withLabelOptions(open(root, opts), opts);
}
