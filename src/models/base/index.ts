export { SegmentationModel, loadPretrainedAs, padToMultiple, type Decoder, type HeadOptions, type InferenceCopyOptions, type InferenceLayout, type SegmentationOutput } from './model.js';
export { type ArchitectureSpec, type CommonOptions, type ResolvedCommon, resolveOptions, smpConfig, optionsFromSmp } from './config.js';
export { ConvBnRelu, initDecoder } from './blocks.js';
export { SegmentationHead, ClassificationHead, ACTIVATIONS, type ActivationName, type AuxParams } from './heads.js';
export { foldBatchNorms, foldedConvBnParams, fuseConvBn, isConvBnPair, convBnPairs, packConvsForMkldnn } from './fuse.js';
export { type PansegMeta, type PretrainedFiles, readPretrained, writePretrained } from './pretrained.js';
