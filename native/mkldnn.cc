// oneDNN (mkldnn) layout: opaque tensors in oneDNN's blocked memory order, convolution weights
// reordered once for it, and the convolution that keeps activations blocked between layers.
// Used by inference copies (src/models/fuse.ts); TypeScript validates arguments (src/engine/mkldnn.ts).
#include "common.h"

// With ideep's headers (Debian: libideep-dev, the same ideep libtorch was built with) the convolution
// calls oneDNN itself, for Winograd on 3x3 stride-1 layers and a fused ReLU, neither of which ATen
// 1.13's mkldnn_convolution asks for. Without them, ATen's op runs instead.
#if __has_include(<ideep.hpp>) && !defined(PANSEG_NO_IDEEP)
#include <dlfcn.h>
#include <ideep.hpp>
#include <oneapi/dnnl/dnnl_version.h>
#define PANSEG_IDEEP 1
namespace at {
namespace native {
// Exported by libtorch_cpu (ATen/native/mkldnn/MKLDNNCommon.h, which libtorch-dev does not install).
ideep::tensor& itensor_from_mkldnn(const at::Tensor& mkldnn_tensor);
ideep::tensor itensor_view_from_dense(const at::Tensor& tensor);
at::Tensor new_with_itensor_mkldnn(ideep::tensor&& it, c10::optional<c10::ScalarType> dtype, c10::optional<c10::Device> device);
}  // namespace native
}  // namespace at
#endif

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

#ifdef PANSEG_IDEEP
static ideep::algorithm Algorithm(const Napi::Value& v) {
  auto a = v.As<Napi::String>().Utf8Value();
  if (a == "direct") return ideep::algorithm::convolution_direct;
  if (a == "winograd") return ideep::algorithm::convolution_winograd;
  throw std::invalid_argument("unknown convolution algorithm " + a);
}
static ideep::dims Dims(const std::vector<int64_t>& v) { return ideep::dims(v.begin(), v.end()); }
// oneDNN's training-mode kernels, measured faster here than its inference ones (brgconv) on every
// PAN layer, and Winograd's inference kernel wants weights in a format that depends on the input size.
static constexpr auto kProp = ideep::prop_kind::forward_training;

// ideep is header-only over libdnnl.so, which a Debian libtorch loads; a libtorch that links oneDNN
// statically (pytorch.org's) exports no dnnl symbols, and calling ideep there would abort. So use it
// only when the process has the oneDNN these headers were written for.
bool IdeepUsable() {
  static const bool ok = [] {
    void* lib = dlopen("libdnnl.so.2", RTLD_LAZY | RTLD_NOLOAD);
    if (!lib) return false;
    using VersionFn = const dnnl_version_t* (*)();
    auto version = reinterpret_cast<VersionFn>(dlsym(lib, "dnnl_version"));
    bool match = version && version()->major == DNNL_VERSION_MAJOR && version()->minor == DNNL_VERSION_MINOR;
    dlclose(lib);
    return match;
  }();
  return ok;
}
#else
bool IdeepUsable() { return false; }
#endif

// mkldnnIdeep(): whether convolutions go through ideep (Winograd, fused ReLU) rather than ATen.
static Napi::Value MkldnnIdeep(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), IdeepUsable()); }

// mkldnnPackConv(w, padding, stride, dilation, groups, inputSize, algorithm): the weight reordered
// once into the blocked format oneDNN's convolution (that algorithm, an input like inputSize)
// expects, so no call reorders it again.
static Napi::Value PackConv(const Napi::CallbackInfo& info) {
  auto w = Get(info[0]).contiguous();
  auto padding = Ints(info[1]), stride = Ints(info[2]), dilation = Ints(info[3]);
  int64_t groups = Int(info[4]);
#ifdef PANSEG_IDEEP
  if (groups == 1 && IdeepUsable()) {
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset);  // as ATen's mkldnn ops
    auto algo = Algorithm(info[6]);
    auto src = at::native::itensor_view_from_dense(w);
    auto desc = ideep::convolution_forward::expected_weights_desc(
        src.get_dims(), src.get_data_type(), Dims(stride), Dims(padding), Dims(padding), Dims(dilation), 1, algo, kProp,
        src.get_data_type(), Dims(Ints(info[5])));
    ideep::tensor packed(desc);
    packed.feed_from(src);
    return Wrap(info.Env(), at::native::new_with_itensor_mkldnn(std::move(packed), w.scalar_type(), w.device()));
  }
#endif
  return Wrap(info.Env(), at::mkldnn_reorder_conv2d_weight(w.to_mkldnn(), padding, stride, dilation, groups));
}

// mkldnnConv2d(x, packedW, b | null, padding, stride, dilation, groups, blockedOut, algorithm, relu)
// x may be dense (converted here) or blocked; the result is blocked when blockedOut, else dense.
static Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  auto& x = Get(info[0]);
  auto xb = x.is_mkldnn() ? x : x.contiguous().to_mkldnn();
  auto& w = Get(info[1]);
  auto bias = GetOpt(info[2]);
  auto padding = Ints(info[3]), stride = Ints(info[4]), dilation = Ints(info[5]);
  int64_t groups = Int(info[6]);
  bool relu = Bool(info[9]);
  at::Tensor y;
#ifdef PANSEG_IDEEP
  if (groups == 1 && IdeepUsable()) {
    c10::impl::ExcludeDispatchKeyGuard no_autograd(c10::autograd_dispatch_keyset);
    auto algo = Algorithm(info[8]);
    const ideep::tensor& xin = at::native::itensor_from_mkldnn(xb);
    // ideep runs NHWC input as channels-last, for which oneDNN has no Winograd kernel.
    ideep::tensor xi = algo == ideep::algorithm::convolution_winograd && xin.get_desc().is_nhwc()
                           ? xin.reorder_if_differ_in(ideep::tensor::desc(xin.get_dims(), xin.get_data_type(), ideep::format_tag::nChw16c))
                           : xin;
    const ideep::tensor& wi = at::native::itensor_from_mkldnn(w);
    auto wd = wi.get_dims();
    ideep::dims out = {xi.get_dims()[0], wd[0]};
    for (int d = 0; d < 2; d++) {
      out.push_back((xi.get_dims()[2 + d] + 2 * padding[d] - dilation[d] * (wd[2 + d] - 1) - 1) / stride[d] + 1);
    }
    auto dil = Dims(dilation);  // ATen's convention (1 = none); ideep converts to oneDNN's
    auto attr = relu ? ideep::attr_t::fuse_relu() : ideep::attr_t();
    ideep::tensor yi;
    if (bias) {
      auto bi = at::native::itensor_view_from_dense(bias->contiguous());
      ideep::convolution_forward::compute(xi, wi, bi, out, yi, Dims(stride), dil, Dims(padding), Dims(padding), 1, ideep::scale_t(),
                                          ideep::scale_t(), ideep::scale_t(), attr, algo, kProp);
    } else {
      ideep::convolution_forward::compute(xi, wi, out, yi, Dims(stride), dil, Dims(padding), Dims(padding), 1, ideep::scale_t(),
                                          ideep::scale_t(), ideep::scale_t(), attr, algo, kProp);
    }
    y = at::native::new_with_itensor_mkldnn(std::move(yi), x.scalar_type(), x.device());
  }
#endif
  if (!y.defined()) {
    y = at::mkldnn_convolution(xb, w, bias, padding, stride, dilation, groups);
    if (relu) y.relu_();
  }
  return Wrap(info.Env(), Bool(info[7]) ? y : y.to_dense());
}

void InitMkldnn(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "isMkldnn", IsMkldnn);
  Register(env, exports, "mkldnnIdeep", MkldnnIdeep);
  Register(env, exports, "toMkldnn", ToMkldnn);
  Register(env, exports, "toDense", ToDense);
  Register(env, exports, "mkldnnPackConv", PackConv);
  Register(env, exports, "mkldnnConv2d", Conv2d);
}

}  // namespace panseg
