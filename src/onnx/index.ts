// `panseg/onnx`: exported models on onnxruntime-node, for inference-only services. Loads neither
// libtorch nor panseg's native addon; needs only sharp and onnxruntime-node (an optional dependency).
export { OnnxModel, type OnnxSegmentOptions, type OnnxSegmentation } from './model.js';
export { OnnxSession, loadOnnxRuntime, type OnnxSessionOptions, type OnnxOutput } from './session.js';
export { labelsOf, probsOf, type Planes } from './labels.js';
export { readSidecar, sidecarPathFor, type OnnxSidecar } from '../export/sidecar.js';
export { paddedSize, validSide, type InputSizeRule } from '../common/input-size.js';
export { decodeImage, type RgbImage } from '../data/decode.js';
export { PansegError } from '../common/errors.js';
