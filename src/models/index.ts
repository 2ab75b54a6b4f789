export * from './encoders/index.js';
export * from './pan/index.js';
export { SegmentationHead, ClassificationHead, ACTIVATIONS, type ActivationName, type AuxParams } from './heads.js';
