// oneDNN (mkldnn) layout: opaque tensors in oneDNN's blocked memory order, convolution weights
// reordered once for it, and the convolution that keeps activations blocked between layers.
// Used by inference copies (src/models/fuse.ts); TypeScript validates arguments.
#include "common.h"

namespace panseg {

static c10::optional<at::ScalarType> DtypeOpt(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
  return Dtype(v);
}

static Napi::Value IsMkldnn(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Get(info[0]).is_mkldnn()); }

// toMkldnn(t, dtype | null): a blocked copy, optionally cast (float32 <-> bfloat16). A blocked
// input is returned as is (a new handle) or cast through a dense copy: to_mkldnn takes dense only.
static Napi::Value ToMkldnn(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  auto dtype = DtypeOpt(info[1]);
  if (t.is_mkldnn()) return Wrap(info.Env(), !dtype || *dtype == t.scalar_type() ? t : t.to_dense(dtype).to_mkldnn());
  return Wrap(info.Env(), t.contiguous().to_mkldnn(dtype));
}

// toDense(t, dtype | null): back to an ordinary contiguous (NCHW) tensor, optionally cast.
static Napi::Value ToDense(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).to_dense(DtypeOpt(info[1]))); }

// mkldnnPackConv(w, padding, stride, dilation, groups): the weight reordered once into the
// blocked format oneDNN's convolution expects, so no call reorders it again.
static Napi::Value PackConv(const Napi::CallbackInfo& info) {
  auto w = Get(info[0]).contiguous().to_mkldnn();
  return Wrap(info.Env(), at::mkldnn_reorder_conv2d_weight(w, Ints(info[1]), Ints(info[2]), Ints(info[3]), Int(info[4])));
}

// mkldnnConv2d(x, packedW, b | null, padding, stride, dilation, groups, blockedOut)
// x may be dense (converted here) or blocked; the result is blocked when blockedOut, else dense.
// ReLU is not fused: ATen 1.13 offers post-ops only on its prepacked convolution, whose kernel takes
// dense tensors alone (mkldnn_prepacked::conv2d_run has no MkldnnCPU kernel).
static Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  auto& x = Get(info[0]);
  auto xb = x.is_mkldnn() ? x : x.contiguous().to_mkldnn();
  auto y = at::mkldnn_convolution(xb, Get(info[1]), GetOpt(info[2]), Ints(info[3]), Ints(info[4]), Ints(info[5]), Int(info[6]));
  return Wrap(info.Env(), Bool(info[7]) ? y : y.to_dense());
}

void InitMkldnn(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "isMkldnn", IsMkldnn);
  Register(env, exports, "toMkldnn", ToMkldnn);
  Register(env, exports, "toDense", ToDense);
  Register(env, exports, "mkldnnPackConv", PackConv);
  Register(env, exports, "mkldnnConv2d", Conv2d);
}

}  // namespace panseg
