// The data side of training: datasets, augmentation, batching. See each module's TSDoc.
export { Dataset, type DatasetSpec, type LabelOptions, type LabelSpec, type LoadedSample, type Sample } from './datasets/dataset.js';
export { withLabelOptions } from './datasets/labels.js';
export { inspectDataset, type DatasetReport, type InspectOptions } from './datasets/inspect.js';
export {
  cocoMask, convertCoco, convertLabelme, decodeRleString, encodeRleString, fillCircle, fillPolygon, labelmeMask, maskToRle, paintRle,
  parseCoco, parseLabelme, type CocoConvertOptions, type CocoIndex, type ConvertSummary, type ImportLimits, type LabelmeConvertOptions,
  type LabelmeFile,
} from './import/index.js';
export {
  applySplit, checkValSource, openTrainVal, readSplitFile, splitDataset, writeSplitFile, type SplitFile, type SplitOptions, type TrainValOptions,
} from './datasets/split.js';
export { DATASETS, datasetNames, openDataset, type DatasetOptions } from './datasets/registry.js';
export { openVoc, type VocOptions } from './datasets/voc.js';
export { openCamvid, CAMVID_VOID, type CamvidOptions } from './datasets/camvid.js';
export { openCityscapes, CITYSCAPES_TRAIN_IDS, type CityscapesOptions } from './datasets/cityscapes.js';
export { openFolder, readClasses, type ClassesFile, type FolderOptions } from './datasets/folder.js';
export { decodeImage, decodeMask, MaskValueError, type RawMask, type RgbImage } from './decode.js';
export { encodeIndexedPng, readIndexedPng, type IndexedPng } from './png.js';
export { Rng, mixSeed, permutation } from './prng.js';
export {
  IMAGENET_MEAN, IMAGENET_STD, evalOptions, evalTransform, trainOptions, trainTransform, unpad,
  type ColorJitter, type EvalOptions, type EvalTransform, type PadInfo, type TrainOptions, type TrainTransform, type Transformed,
} from './transforms.js';
export { DataLoader, type Batch, type BadSample, type DataLoaderOptions, type LoaderStats } from './loader.js';
export { batchToTensors } from './tensors.js';
export { generateSynthetic, SYNTHETIC_CLASSES, SYNTHETIC_COLORS, type SyntheticOptions, type SyntheticResult } from './synthetic.js';
