// Data-parallel training across processes and machines on libtorch's c10d (Gloo).
export { distributedBackends, distributedUnavailable, ncclAvailable } from '../engine/c10d.js';
export { workerEnv, type WorkerEnv, DEFAULT_MASTER_ADDR, DEFAULT_MASTER_PORT } from './env.js';
export { configHash, DistributedError, type PeerInfo } from './rendezvous.js';
export { ProcessGroup, type ProcessGroupOptions, type ReduceOp } from './process-group.js';
export { GradientSync, type GradientSyncOptions, type GradSyncStats, allreducePerParameter, broadcastModule, broadcastBuffers } from './grad-sync.js';
export { SyncBatchNorm2d, convertSyncBatchNorm } from './sync-bn.js';
export { DistributedSampler, type DistributedSamplerOptions, subsetDataset, evalShard } from './sampler.js';
export { launch, type LaunchOptions, type LaunchResult, type WorkerExit } from './launcher.js';
export { DistributedRun, type DistributedTrainOptions, ShardedLoader, comparableConfig } from './trainer.js';
