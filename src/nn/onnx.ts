// The contract between modules and the ONNX exporter (src/export). A block that is more than a chain
// of layers implements `emitOnnx` next to its `forward`, in terms of this interface; the exporter
// implements it and maps plain layers (Conv2d, BatchNorm2d, Sequential, pooling, ...) itself.
// Types only: nn and models never import the exporter.
import type { Module } from './module.js';
import type { Conv2d } from './layers.js';

/** A value in the graph under construction and, for fixed-size exports, its [H, W] (else null). */
export interface OnnxValue {
  name: string;
  hw: [number, number] | null;
}

/** A spatial size for Resize: constant, or an int64 [2] value computed in the graph. */
export type OnnxSize = { fixed: [number, number] } | { value: string };

export type OnnxInterpolation = 'bilinear' | 'nearest' | 'bicubic' | 'nearest-exact';

export interface OnnxEmitter {
  /** Emits any module on `inputs`: a plain layer through the exporter's map, a block through its own emitOnnx. */
  module(m: Module, name: string, ...inputs: OnnxValue[]): OnnxValue;
  /** Conv with an optional BatchNorm folded in (null or Identity = none) and an optional ReLU. */
  conv(x: OnnxValue, conv: Conv2d, bn: Module | null, relu: boolean, name: string): OnnxValue;
  /** Elementwise Add / Mul (with ONNX broadcasting), and Relu / Sigmoid. */
  add(a: OnnxValue, b: OnnxValue, name: string): OnnxValue;
  mul(a: OnnxValue, b: OnnxValue, name: string): OnnxValue;
  relu(x: OnnxValue, name: string): OnnxValue;
  sigmoid(x: OnnxValue, name: string): OnnxValue;
  /** Offers a value as an optional graph output under `tag` (PAN's FPA offers 'attention'). */
  tap(tag: string, x: OnnxValue): void;
  /** Concatenation along channels. */
  concat(xs: OnnxValue[], name: string): OnnxValue;
  /** F.interpolate to `to`; alignCorners applies to bilinear and bicubic (default false). */
  resize(x: OnnxValue, to: OnnxSize, mode: OnnxInterpolation, name: string, alignCorners?: boolean): OnnxValue;
  /** x's [H, W] as a Resize target. */
  sizeOf(x: OnnxValue): OnnxSize;
  /** x's [H, W] integer-divided ('Div', floor) or multiplied ('Mul') by k. */
  scaled(x: OnnxValue, k: number, op: 'Div' | 'Mul'): OnnxSize;
  /** A raw ONNX node with one output; `hw` is the output's spatial size when known. Attribute numbers are ONNX ints when integral, floats otherwise. */
  op(type: string, inputs: string[], hw: [number, number] | null, name: string, attrs?: Record<string, number | number[] | string>): OnnxValue;
  /** A float32 initializer (weights); returns its value name. */
  weight(name: string, data: Float32Array, dims: number[]): string;
  /** An int64 constant (shapes, axes); returns its value name. */
  int64(values: number[]): string;
}

/** Implemented by blocks the exporter's map does not know: emit the same computation as forward (eval mode). */
export interface OnnxEmittable {
  emitOnnx(e: OnnxEmitter, name: string, ...inputs: OnnxValue[]): OnnxValue;
}

export function isOnnxEmittable(m: unknown): m is OnnxEmittable {
  return typeof (m as Partial<OnnxEmittable>).emitOnnx === 'function';
}
