// The engine's public surface: tensors, creation, functional ops, autograd and memory.
export { Tensor, isTensor, type TensorOrScalar } from './tensor.js';
export * from './creation.js';
export * as F from './functional.js';
export { tidy, keep, dispose, liveTensors } from './memory.js';
export { noGrad, enableGrad, isGradEnabled, inferenceMode, autocast, type AutocastOptions, manualSeed, getRngState, setRngState, setNumThreads, getNumThreads, setWinogradTraining, winogradTraining, setFusedKernels, fusedKernels, buildInfo, cudaAvailable, cudaSynchronize, type BuildInfo } from './runtime.js';
export { DTYPES, type DType, isFloating } from './dtype.js';
export { cpuFeatures, resolvePrecision, type CpuFeatures, type Precision } from './cpu.js';
export { sgdForeach, type SgdForeachOptions, adamwForeach, type AdamwForeachOptions, ampUnscale } from './foreach.js';
export { setCpuBufferCache, emptyCpuBufferCache, cpuBufferCacheStats, type CpuBufferCacheStats } from './buffer-cache.js';
export { packConv2dWeight, mkldnnConv2d, mkldnnAvailable, winogradApplies, winogradAvailable, type ConvAlgorithm, type PackedConvOptions, type MkldnnConv2dOptions } from './mkldnn.js';
export { profileOps, summarizeProfile, isCopyOp, opKind, type PhaseRow, type ProfileRow, type ProfileFloors, type ProfileLine } from './profile.js';
export { CudaGraph, type CudaGraphOptions, isCapturing, onSideStream } from './cuda-graph.js';
export { sgdCapturable, adamwCapturable, ampUnscaleCapturable, ampUpdateScale, type CapturableSgdOptions, type CapturableAdamwOptions } from './capturable.js';
