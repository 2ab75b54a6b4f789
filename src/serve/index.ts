// The segmentation server: the web page, the ONNX model for it, and POST /api/segment on libtorch.
export { startServer, resolveServeOptions, DEFAULT_MAX_PIXELS, type ServeOptions, type RunningServer } from './server.js';
export { restrictDecoders } from './image.js';
export { type ExportSettings, type OnnxModel, onnxCachePath } from './onnx-model.js';
export { type SegmentStats } from './segment.js';
export { type ModelInfo } from './protocol.js';
export { IMAGE_TYPES } from './upload.js';
