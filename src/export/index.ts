// ONNX export: any architecture -> a standard ONNX model + sidecar JSON, written in TypeScript (no Python, no protobuf dependency).
export { exportOnnx, pansegVersion, MIN_OPSET, MAX_OPSET, type ExportOnnxOptions, type ExportOnnxResult } from './export-onnx.js';
export { type OnnxSidecar, readSidecar, sidecarPathFor } from './sidecar.js';
export { GraphBuilder, attr, writeMessage } from './graph.js';
export { Emitter, foldBatchNorm, type EmitOptions } from './emitter.js';
export { emitModel, type EmitModelOptions, type EmittedGraph } from './emit-model.js';
export { cachedOnnx, cacheDir } from './cache.js';
