// Training convolutions through oneDNN's Winograd kernels. ATen 1.13 asks oneDNN for direct convolution
// only; for float32 3x3 stride-1 layers oneDNN's Winograd forward, backward-data and backward-weights kernels
// (avx512_core) do the same work in about half the time here. They take blocked activations, so each call
// reorders its strided input (NCHW or channels-last) in and its result back out: a memory pass each,
// small beside the convolution. An autograd Function holds the three together; anything else (another
// shape, dtype or device, autocast, no gradient wanted, a oneDNN without the kernels) takes at::conv2d.
#include "common.h"

#if __has_include(<dnnl.hpp>) && !defined(PANSEG_NO_IDEEP)
#include <dnnl.hpp>
#if DNNL_VERSION_MAJOR == 2  // oneDNN 3 dropped the operation descriptors used below
#define PANSEG_WINOGRAD 1
#endif
#endif

#ifdef PANSEG_WINOGRAD
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/version.h>

#include <array>
#include <map>
#include <memory>
#include <unordered_map>
#endif

namespace panseg {

static bool g_winograd = true;

#ifdef PANSEG_WINOGRAD
namespace {
using dnnl::memory;
using tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// The three primitives of one layer shape, made once per thread (oneDNN JIT-compiles them).
struct Prims {
  dnnl::convolution_forward::primitive_desc fwdPd;
  dnnl::convolution_backward_data::primitive_desc dataPd;
  dnnl::convolution_backward_weights::primitive_desc weightsPd;
  dnnl::convolution_forward fwd;
  dnnl::convolution_backward_data data;
  dnnl::convolution_backward_weights weights;
};

using Key = std::array<int64_t, 7>;  // N, C, O, H, W, padding, bias

// The layer's primitives, or null where oneDNN has no Winograd kernel for it (remembered too).
std::shared_ptr<Prims> Find(const Key& k) {
  thread_local std::map<Key, std::shared_ptr<Prims>> cache;
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  if (cache.size() > 256) cache.clear();  // shapes of a training run are few; bound the odd case
  std::shared_ptr<Prims> p;
  try {
    const auto [n, c, o, h, w, pad, bias] = k;
    const memory::dims src{n, c, h, w}, wei{o, c, 3, 3}, dst{n, o, h + 2 * pad - 2, w + 2 * pad - 2}, one{1, 1}, pads{pad, pad};
    const auto f32 = memory::data_type::f32;
    const memory::desc s(src, f32, tag::any), wt(wei, f32, tag::any), d(dst, f32, tag::any), b({o}, f32, tag::x);
    const auto algo = dnnl::algorithm::convolution_winograd;
    const auto prop = dnnl::prop_kind::forward_training;
    auto fwdPd = bias ? dnnl::convolution_forward::primitive_desc({prop, algo, s, wt, b, d, one, pads, pads}, Engine())
                      : dnnl::convolution_forward::primitive_desc({prop, algo, s, wt, d, one, pads, pads}, Engine());
    dnnl::convolution_backward_data::primitive_desc dataPd({algo, s, wt, d, one, pads, pads}, Engine(), fwdPd);
    auto weightsPd = bias ? dnnl::convolution_backward_weights::primitive_desc({algo, s, wt, b, d, one, pads, pads}, Engine(), fwdPd)
                          : dnnl::convolution_backward_weights::primitive_desc({algo, s, wt, d, one, pads, pads}, Engine(), fwdPd);
    p = std::make_shared<Prims>(Prims{fwdPd, dataPd, weightsPd, dnnl::convolution_forward(fwdPd),
                                      dnnl::convolution_backward_data(dataPd), dnnl::convolution_backward_weights(weightsPd)});
  } catch (const dnnl::error&) {
    p = nullptr;
  }
  cache.emplace(k, p);
  return p;
}

// The memory order of a dense tensor: channels-last only where it is that and not also plain NCHW.
at::MemoryFormat FormatOf(const at::Tensor& t) {
  return !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast) ? at::MemoryFormat::ChannelsLast
                                                                              : at::MemoryFormat::Contiguous;
}

// A dense tensor as oneDNN memory over its own data: NCHW (OIHW) or channels-last (NHWC, OHWI).
memory Strided(const at::Tensor& t) {
  const auto dims = memory::dims(t.sizes().begin(), t.sizes().end());
  // nhwc and nchw name the same orders as ohwi and oihw for weights.
  const auto order = FormatOf(t) == at::MemoryFormat::ChannelsLast ? tag::nhwc : tag::nchw;
  return memory({dims, memory::data_type::f32, order}, Engine(), t.data_ptr());
}

// `t` in the memory order the strided result should have: its own when dense in one, else NCHW.
at::Tensor Dense(const at::Tensor& t) {
  return t.is_contiguous() || t.is_contiguous(at::MemoryFormat::ChannelsLast) ? t : t.contiguous();
}

// A buffer for memory of `desc` from ATen's allocator (panseg's CPU buffer cache), and oneDNN memory over it.
std::pair<at::Tensor, memory> Buffer(const memory::desc& desc) {
  auto buf = at::empty({static_cast<int64_t>((desc.get_size() + 3) / 4)}, at::kFloat);
  return {buf, memory(desc, Engine(), buf.data_ptr())};
}

// `from` (user memory) in layout `desc`: reordered into a new buffer unless it already is in it.
std::pair<at::Tensor, memory> In(const at::Tensor& owner, memory from, const memory::desc& desc, dnnl::stream& s) {
  if (from.get_desc() == desc) return {owner, from};
  auto to = Buffer(desc);
  dnnl::reorder(from, to.second).execute(s, from, to.second);
  return to;
}

// A blocked result reordered into a strided tensor of `sizes` in memory order `fmt`.
at::Tensor Out(memory from, at::IntArrayRef sizes, at::MemoryFormat fmt, dnnl::stream& s) {
  auto t = at::empty(sizes, at::TensorOptions().dtype(at::kFloat), fmt);
  auto to = Strided(t);
  dnnl::reorder(from, to).execute(s, from, to);
  return t;
}

struct WinogradConv : public torch::autograd::Function<WinogradConv> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x0, const at::Tensor& w0,
                            const c10::optional<at::Tensor>& b, const Key& key) {
    // Named for libtorch's profiler (npm run bench -- profile counts it with the convolutions).
    RECORD_FUNCTION("panseg::winograd_conv2d", std::vector<c10::IValue>({x0, w0}));
    auto p = Find(key);
    auto x = Dense(x0), w = Dense(w0);
    dnnl::stream s(Engine());
    auto xs = In(x, Strided(x), p->fwdPd.src_desc(), s);
    auto ws = In(w, Strided(w), p->fwdPd.weights_desc(), s);
    auto y = Buffer(p->fwdPd.dst_desc());
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xs.second}, {DNNL_ARG_WEIGHTS, ws.second}, {DNNL_ARG_DST, y.second}};
    at::Tensor bc;
    if (b) {
      bc = b->contiguous();
      args.emplace(DNNL_ARG_BIAS, memory(p->fwdPd.bias_desc(), Engine(), bc.data_ptr()));
    }
    p->fwd.execute(s, args);
    const auto d = p->fwdPd.dst_desc().dims();
    auto out = Out(y.second, {d[0], d[1], d[2], d[3]}, FormatOf(x), s);
    s.wait();
    ctx->save_for_backward({x, w});
    ctx->saved_data["key"] = std::vector<int64_t>(key.begin(), key.end());
    return out;
  }

  // The gradients carry no derivative of their own: panseg's backward never builds a graph (no create_graph).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1];
    RECORD_FUNCTION("panseg::winograd_conv2d_backward", std::vector<c10::IValue>({grads[0], x, w}));  // as aten::convolution_backward
    const auto k = ctx->saved_data["key"].toIntVector();
    Key key;
    std::copy(k.begin(), k.end(), key.begin());
    auto p = Find(key);  // this thread's primitives (the backward may run on another than the forward)
    const bool bias = key[6] != 0;
    auto gy = Dense(grads[0]);
    dnnl::stream s(Engine());
    at::Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      auto g = In(gy, Strided(gy), p->dataPd.diff_dst_desc(), s);
      auto ws = In(w, Strided(w), p->dataPd.weights_desc(), s);
      auto dx = Buffer(p->dataPd.diff_src_desc());
      p->data.execute(s, {{DNNL_ARG_DIFF_DST, g.second}, {DNNL_ARG_WEIGHTS, ws.second}, {DNNL_ARG_DIFF_SRC, dx.second}});
      gx = Out(dx.second, x.sizes(), FormatOf(x), s);
      s.wait();
    }
    if (ctx->needs_input_grad(1) || (bias && ctx->needs_input_grad(2))) {
      auto g = In(gy, Strided(gy), p->weightsPd.diff_dst_desc(), s);
      auto xs = In(x, Strided(x), p->weightsPd.src_desc(), s);
      auto dw = Buffer(p->weightsPd.diff_weights_desc());
      std::unordered_map<int, memory> args{{DNNL_ARG_DIFF_DST, g.second}, {DNNL_ARG_SRC, xs.second}, {DNNL_ARG_DIFF_WEIGHTS, dw.second}};
      if (bias) {
        gb = at::empty({w.size(0)}, at::kFloat);
        args.emplace(DNNL_ARG_DIFF_BIAS, memory(p->weightsPd.diff_bias_desc(), Engine(), gb.data_ptr()));
      }
      p->weights.execute(s, args);
      gw = Out(dw.second, w.sizes(), FormatOf(w), s);
      s.wait();
    }
    return {gx, gw, gb, at::Tensor()};
  }
};
}  // namespace

c10::optional<at::Tensor> WinogradConv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  if (!g_winograd || !at::GradMode::is_enabled() || !(x.requires_grad() || w.requires_grad())) return c10::nullopt;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const bool autocast = at::autocast::is_autocast_enabled(at::kCPU);  // 2.4 deprecated is_cpu_enabled()
#else
  const bool autocast = at::autocast::is_cpu_enabled();
#endif
  if (autocast || groups != 1 || x.dim() != 4 || w.dim() != 4 || w.size(2) != 3 || w.size(3) != 3) return c10::nullopt;
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || !x.device().is_cpu() || !w.device().is_cpu()) return c10::nullopt;
  if (x.layout() != at::kStrided || w.layout() != at::kStrided || x.size(1) != w.size(1)) return c10::nullopt;
  const auto one = [](at::IntArrayRef v) { return v.size() == 2 && v[0] == 1 && v[1] == 1; };
  if (!one(stride) || !one(dilation) || padding.size() != 2 || padding[0] != padding[1] || padding[0] > 1) return c10::nullopt;
  if (b && (b->scalar_type() != at::kFloat || !b->device().is_cpu() || b->dim() != 1 || b->size(0) != w.size(0))) return c10::nullopt;
  if (!IdeepUsable()) return c10::nullopt;
  const Key key{x.size(0), x.size(1), w.size(0), x.size(2), x.size(3), padding[0], b ? 1 : 0};
  if (!Find(key)) return c10::nullopt;
  return WinogradConv::apply(x, w, b, key);
}
#else
c10::optional<at::Tensor> WinogradConv2d(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, at::IntArrayRef,
                                         at::IntArrayRef, at::IntArrayRef, int64_t) {
  return c10::nullopt;
}
#endif

// setWinogradTraining(on) -> whether the kernels exist here: this build calls the system oneDNN 2.x and
// it has Winograd for this CPU (avx512_core). With the setting off, every convolution takes ATen's
// direct kernels, as PyTorch's do.
static Napi::Value SetWinogradTraining(const Napi::CallbackInfo& info) {
  g_winograd = Bool(info[0]);
#ifdef PANSEG_WINOGRAD
  return Napi::Boolean::New(info.Env(), IdeepUsable() && Find({1, 16, 16, 8, 8, 1, 0}) != nullptr);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}
static Napi::Value WinogradTraining(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), g_winograd); }

void InitWinograd(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "setWinogradTraining", SetWinogradTraining);
  Register(env, exports, "winogradTraining", WinogradTraining);
}

}  // namespace panseg
