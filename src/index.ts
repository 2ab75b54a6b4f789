// panseg's public API. Importing it has no side effects beyond loading the native addon.
export * from './engine/index.js';
export * as nn from './nn/index.js';
export { Module, Layer, countMacs } from './nn/index.js';
export * from './models/index.js';
export * from './io/index.js';
export { hubDownload, hubDownloadSync, hubSnapshot, hubSnapshotSync, cachedHubFile, hubCacheDir, hubOffline, type HubFile, type HubOptions } from './io/hub.js';
export { registerEncoderWeights, encoderWeightsNames, encoderWeightsSource, encoderWeightsFile, type EncoderWeightsSource } from './models/encoders/weights.js';
export { pretrainedDir, type PretrainedSourceOptions } from './models/base/pretrained-source.js';
export * from './data/index.js';
export { PansegError } from './common/errors.js';
export * from './common/palette.js';
// training
export { train, type TrainOptions, type TrainResult } from './train/train.js';
export { SGD, AdamW, Optimizer, type SGDOptions, type AdamWOptions, type ParamGroup } from './train/optimizers.js';
export { GradScaler, type GradScalerOptions } from './train/grad-scaler.js';
export { LRScheduler, lrFactor, type ScheduleOptions, type ScheduleName } from './train/schedules.js';
export { crossEntropyLoss, diceLoss, focalLoss, combinedLoss, parseLoss, auxPresenceLoss, type LossFn, type LossTerm } from './train/losses.js';
export { saveCheckpoint, restoreCheckpoint, type TrainerState } from './train/checkpoint.js';
export { writeTrainingReport, rewriteTrainingReport } from './train/report.js';
export { TfEventsWriter, readEvents, type TfEvent } from './io/tfevents.js';
export { ProgressBar } from './common/progress.js';
export { compareArchitectures, compareMarkdown, compareTable, type CompareOptions, type CompareResult, type CompareRow, type Comparison } from './compare/index.js';
// evaluation and prediction
export { ConfusionMatrix, metricsFromConfusion, type SegMetrics } from './eval/metrics.js';
export { evaluate, type EvaluateOptions, type EvaluationResult } from './eval/evaluate.js';
export { predictProbs, probsToLabels, withPrecision, inferenceCopy, type InferenceOptions } from './eval/inference.js';
export { predictFiles, segment, segmentImage, collectInputs, type PredictFilesOptions, type Segmentation } from './eval/predict.js';
export { probs, probsSync, modelSource, type LogitsSource, type Segmentable } from './eval/segmenter.js';
export * from './eval/visualize.js';
export { writeReport, type ReportData } from './eval/report.js';
// attention pictures
export * from './explain/index.js';
// deployment
export { exportOnnx, readSidecar, sidecarPathFor, cachedOnnx, type ExportOnnxOptions, type ExportOnnxResult, type OnnxSidecar } from './export/index.js';
export { OnnxSegmenter } from './eval/onnx-engine.js';
export { startServer, restrictDecoders, type ServeOptions, type RunningServer } from './serve/index.js';
// distributed training
export * from './distributed/index.js';
