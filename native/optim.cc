// Optimizer arithmetic over many tensors in one call (PyTorch's foreach=True paths): one native
// call per step instead of several ops per parameter, and multi-tensor kernels on the GPU.
#include "common.h"

#include <torch/version.h>

#include <cmath>

namespace panseg {

// sgdForeach(params, grads, bufs | null, lr, weightDecay, momentum, dampening, nesterov) -> new
// momentum buffers when bufs is null and momentum > 0 (torch.optim.SGD's first step clones the
// update), else undefined. Same formulas as the per-parameter SGD in src/train/optimizers.ts.
static Napi::Value SgdForeach(const Napi::CallbackInfo& info) {
  auto params = GetList(info[0]);
  auto grads = GetList(info[1]);
  bool first = info[2].IsNull() || info[2].IsUndefined();
  auto bufs = first ? std::vector<at::Tensor>() : GetList(info[2]);
  double lr = Num(info[3]), wd = Num(info[4]), momentum = Num(info[5]), dampening = Num(info[6]);
  bool nesterov = Bool(info[7]);
  if (grads.size() != params.size() || (!first && bufs.size() != params.size()))
    throw std::invalid_argument("params, grads and buffers must have the same length");
  c10::NoGradGuard ng;
  auto d = wd != 0 ? at::_foreach_add(grads, params, wd) : grads;
  Napi::Value out = info.Env().Undefined();
  if (momentum != 0) {
    if (first) {
      for (auto& t : d) bufs.push_back(t.clone());
      out = WrapList(info.Env(), bufs);
    } else {
      at::_foreach_mul_(bufs, momentum);
      at::_foreach_add_(bufs, d, 1 - dampening);
    }
    d = nesterov ? at::_foreach_add(d, bufs, momentum) : bufs;
  }
  at::_foreach_add_(params, d, -lr);
  return out;
}

// adamwForeach(params, grads, expAvg, expAvgSq, lr, weightDecay, beta1, beta2, eps, step): one
// torch.optim.AdamW step (amsgrad off) for parameters that all reach `step` now; the same
// formulas as the per-parameter AdamW in src/train/optimizers.ts.
static Napi::Value AdamwForeach(const Napi::CallbackInfo& info) {
  auto params = GetList(info[0]);
  auto grads = GetList(info[1]);
  auto m = GetList(info[2]);
  auto v = GetList(info[3]);
  double lr = Num(info[4]), wd = Num(info[5]), b1 = Num(info[6]), b2 = Num(info[7]), eps = Num(info[8]);
  double step = Num(info[9]);
  size_t n = params.size();
  if (grads.size() != n || m.size() != n || v.size() != n) throw std::invalid_argument("params, grads and both moment lists must have the same length");
  c10::NoGradGuard ng;
  at::_foreach_mul_(params, 1 - lr * wd);
#if TORCH_VERSION_MAJOR >= 2
  at::_foreach_lerp_(m, grads, 1 - b1);
#else
  for (size_t i = 0; i < n; i++) m[i].lerp_(grads[i], 1 - b1);  // no _foreach_lerp_ in 1.13
#endif
  at::_foreach_mul_(v, b2);
  at::_foreach_addcmul_(v, grads, grads, 1 - b2);
  double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  auto denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, eps);
  at::_foreach_addcdiv_(params, m, denom, -lr / bc1);
  return info.Env().Undefined();
}

// ampUnscale(grads, invScale) -> true when every gradient is finite. Multiplies each gradient by
// invScale in place; on CUDA with one fused kernel and a single device read.
static Napi::Value AmpUnscale(const Napi::CallbackInfo& info) {
  auto grads = GetList(info[0]);
  double inv = Num(info[1]);
  c10::NoGradGuard ng;
  if (grads.empty()) return Napi::Boolean::New(info.Env(), true);
  bool cuda = true;
  for (auto& g : grads) cuda = cuda && g.is_cuda() && g.device() == grads[0].device();
  if (cuda) {
    auto opts = grads[0].options().dtype(at::kFloat);
    auto found = at::zeros({1}, opts);
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, at::full({1}, inv, opts));
    return Napi::Boolean::New(info.Env(), found.item<float>() == 0);
  }
  std::vector<at::Tensor> flags;
  for (auto& g : grads) {
    g.mul_(inv);
    flags.push_back(at::isfinite(g).all());
  }
  return Napi::Boolean::New(info.Env(), at::stack(flags).all().item<bool>());
}

void InitOptim(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "sgdForeach", SgdForeach);
  Register(env, exports, "adamwForeach", AdamwForeach);
  Register(env, exports, "ampUnscale", AmpUnscale);
}

}  // namespace panseg
