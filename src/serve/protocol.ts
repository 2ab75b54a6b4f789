// Messages between the server and its inference thread.
import type { ClassArea } from '../eval/visualize.js';

export interface WorkerConfig {
  /** The model directory (savePretrained / save_pretrained). */
  modelDir: string;
  /** libtorch threads in the worker; default all cores. */
  threads?: number;
  /** Sliding windows and inference scale for every image (InferenceOptions' tile, overlap, resizeLong). */
  inference?: { tile?: number; overlap?: number; resizeLong?: number };
}

export interface WorkerRequest {
  id: number;
  /** HWC RGB bytes. */
  data: Uint8Array;
  width: number;
  height: number;
}

/** What the loaded model says about itself. */
export interface ModelInfo {
  /** Class names (from panseg.json, else `class i`); at least 2, as a 1-class model labels 0/1. */
  classes: string[];
  /** One colour per class (from panseg.json, else the VOC palette). */
  colors: [number, number, number][];
  /** smp's class name: 'PAN', 'Unet', 'FPN', ... */
  architecture: string;
  encoder: string;
  outputStride: number;
  minInputSize: number;
}

export type WorkerReply =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'failed'; message: string }
  /** `mask`: the label map as a palette PNG in the class colours; `ms`: time in segmentImage. */
  | { type: 'result'; id: number; mask: Uint8Array; areas: ClassArea[]; width: number; height: number; ms: number }
  | { type: 'error'; id: number; message: string };
