// PSPNet's pyramid pooling as in smp's decoders/pspnet/decoder.py: for each bin size, adaptive
// average pooling -> 1x1 Conv2dReLU -> bilinear (align_corners) back to the input's size; the maps
// and the input concatenated. Also adaptive average pooling in ONNX, exact at any input size.
import { F, type Tensor, tidy } from '../../engine/index.js';
import { AdaptiveAvgPool2d, Module, type OnnxEmitter, type OnnxValue, Sequential } from '../../nn/index.js';
import { Conv2dReLU, type NormOption } from '../base/conv2d-relu.js';

/** smp's bins (PSPDecoder hard-codes them). */
export const PSP_SIZES: readonly number[] = [1, 2, 3, 6];

/** Bilinear with align_corners to [h, w], as smp's PSPBlock. */
function upsampleTo(x: Tensor, size: [number, number]): Tensor {
  return F.interpolate(x, { size, mode: 'bilinear', alignCorners: true });
}

/** PyTorch's adaptive-average-pooling windows [floor(i*n/b), ceil((i+1)*n/b)) as a [b, n] matrix of weights 1/width. */
function poolMatrix(n: number, bins: number): Float32Array {
  const m = new Float32Array(bins * n);
  for (let i = 0; i < bins; i++) {
    const start = Math.floor((i * n) / bins);
    const end = Math.ceil(((i + 1) * n) / bins);
    for (let k = start; k < end; k++) m[i * n + k] = 1 / (end - start);
  }
  return m;
}

/**
 * poolMatrix computed in the graph for a length known only at run time (`n`: a float [1] value).
 * Window bounds are exact in float32: i*n is an integer, so i*n/b is either exact or at least 1/b
 * from an integer, and Floor/Ceil land where PyTorch's integer arithmetic does (any n < 2^24).
 */
function emitPoolMatrix(e: OnnxEmitter, n: string, bins: number, name: string): string {
  const scalar = (v: number, tag: string) => e.weight(`${name}.${tag}`, Float32Array.of(v), []);
  const limit = e.op('Squeeze', [n, e.int64([0])], null, `${name}.n`).name;
  const k = e.op('Range', [scalar(0, 'zero'), limit, scalar(1, 'one')], null, `${name}.k`).name; // [n]: 0 .. n-1
  const i = e.weight(`${name}.i`, Float32Array.from({ length: bins }, (_, j) => j), [bins, 1]);
  const i1 = e.weight(`${name}.i1`, Float32Array.from({ length: bins }, (_, j) => j + 1), [bins, 1]);
  const b = e.weight(`${name}.bins`, Float32Array.of(bins), [1]);
  const start = e.op('Floor', [e.op('Div', [e.op('Mul', [i, n], null, `${name}.in`).name, b], null, `${name}.in_b`).name], null, `${name}.start`).name;
  const end = e.op('Ceil', [e.op('Div', [e.op('Mul', [i1, n], null, `${name}.i1n`).name, b], null, `${name}.i1n_b`).name], null, `${name}.end`).name;
  const inside = e.op('And', [
    e.op('GreaterOrEqual', [k, start], null, `${name}.ge`).name,
    e.op('Less', [k, end], null, `${name}.lt`).name,
  ], null, `${name}.inside`).name;
  const ones = e.op('Cast', [inside], null, `${name}.mask`, { to: 1 }).name; // [bins, n] of 0/1
  const width = e.op('Sub', [end, start], null, `${name}.width`).name;
  return e.op('Div', [ones, width], null, name).name;
}

/**
 * F.adaptiveAvgPool2d(x, bins) in ONNX: GlobalAveragePool for one bin, else the window-averaging
 * matrices applied with MatMul over W then H: constants for a fixed size, computed in the graph from
 * x's shape for a dynamic one. Exact for every size (PyTorch's overlapping windows included), unlike
 * AveragePool, which needs bins that divide the size.
 */
export function emitAdaptiveAvgPool(e: OnnxEmitter, x: OnnxValue, bins: number, name: string): OnnxValue {
  if (bins === 1) return e.op('GlobalAveragePool', [x.name], [1, 1], name);
  let mh: string;
  let mwT: string;
  if (x.hw) {
    const [h, w] = x.hw;
    mh = e.weight(`${name}.pool_h`, poolMatrix(h, bins), [bins, h]);
    const mw = poolMatrix(w, bins);
    const t = new Float32Array(w * bins);
    for (let i = 0; i < bins; i++) for (let k = 0; k < w; k++) t[k * bins + i] = mw[i * w + k];
    mwT = e.weight(`${name}.pool_w`, t, [w, bins]);
  } else {
    const shape = e.op('Shape', [x.name], null, `${name}.shape`).name;
    const side = (from: number, tag: string) => e.op('Cast', [e.op('Slice', [shape, e.int64([from]), e.int64([from + 1])], null, `${name}.${tag}`).name], null, `${name}.${tag}_f`, { to: 1 }).name;
    mh = emitPoolMatrix(e, side(2, 'h'), bins, `${name}.pool_h`);
    mwT = e.op('Transpose', [emitPoolMatrix(e, side(3, 'w'), bins, `${name}.pool_w`)], null, `${name}.pool_wT`, { perm: [1, 0] }).name;
  }
  const y = e.op('MatMul', [x.name, mwT], null, `${name}.w`); // [N, C, H, bins]
  return e.op('MatMul', [mh, y.name], [bins, bins], `${name}.h`); // [N, C, bins, bins]
}

/**
 * One pyramid level; child `pool` = Sequential(AdaptiveAvgPool2d(bins), Conv2dReLU 1x1), keys
 * `pool.1.0.*` (conv) and `pool.1.1.*` (norm). As smp, bin 1 never has a norm: its conv gets a bias.
 */
export class PSPBlock extends Module {
  constructor(inChannels: number, outChannels: number, readonly poolSize: number, useNorm: NormOption = 'batchnorm') {
    super();
    // smp: "PyTorch does not support BatchNorm for 1x1 shape" (a batch of 1x1 maps at batch size 1).
    const norm = poolSize === 1 ? 'identity' : useNorm;
    this.child('pool', new Sequential(new AdaptiveAvgPool2d(poolSize), new Conv2dReLU(inChannels, outChannels, 1, { useNorm: norm })));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => upsampleTo(this.getChild<Sequential>('pool').forward(x), [x.shape[2], x.shape[3]]));
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const pool = this.getChild<Sequential>('pool');
    const pooled = emitAdaptiveAvgPool(e, x, this.poolSize, `${name}.pool.0`);
    const y = e.module(pool.at(1), `${name}.pool.1`, pooled);
    return e.resize(y, e.sizeOf(x), 'bilinear', `${name}.up`, true);
  }
}

/** torch.nn.ModuleList: children "0", "1", ... with no forward of its own. */
class BlockList extends Module {
  constructor(readonly items: PSPBlock[]) {
    super();
    items.forEach((m, i) => this.child(String(i), m));
  }
}

/** The pyramid: one PSPBlock per bin size (inChannels / sizes.length channels each), then the input; 2 x inChannels out for 4 bins. */
export class PSPModule extends Module {
  private readonly blocks: BlockList;
  constructor(inChannels: number, sizes: readonly number[] = PSP_SIZES, useNorm: NormOption = 'batchnorm') {
    super();
    const width = Math.floor(inChannels / sizes.length);
    this.blocks = this.child('blocks', new BlockList(sizes.map((s) => new PSPBlock(inChannels, width, s, useNorm))));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => F.cat([...this.blocks.items.map((b) => b.forward(x)), x], 1));
  }
  emitOnnx(e: OnnxEmitter, name: string, x: OnnxValue): OnnxValue {
    const maps = this.blocks.items.map((b, i) => b.emitOnnx(e, `${name}.blocks.${i}`, x));
    return e.concat([...maps, x], `${name}.cat`);
  }
}
