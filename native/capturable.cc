// Capture-safe optimizer and loss-scaler steps: every per-step number (learning rate, step count,
// loss scale, "a gradient was not finite") lives in a small tensor on the parameters' device, and
// nothing is read back to the host, so one step can be recorded in a CUDA graph and replayed. The
// same code runs on the CPU, where tests compare it with the plain steps of optim.cc.
#include "common.h"

#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_amp_update_scale.h>

namespace panseg {

namespace {
// A skipped step (found > 0) must leave parameters and state bit-identical, as GradScaler.step skips
// optimizer.step(): snapshot them, update in place, then put the snapshot back where skipped.
struct Snapshot {
  std::vector<at::Tensor*> live;
  std::vector<at::Tensor> saved;
  void add(std::vector<at::Tensor>& ts) {
    for (auto& t : ts) {
      live.push_back(&t);
      saved.push_back(t.clone());
    }
  }
  void restoreWhere(const at::Tensor& skip) {
    for (size_t i = 0; i < live.size(); i++) live[i]->copy_(at::where(skip, saved[i], *live[i]));
  }
};

// found: PyTorch's found_inf convention, a float tensor of one element, 1 when a gradient was not finite.
at::Tensor SkipFlag(const at::Tensor& found) { return found.reshape({}).gt(0); }
}  // namespace

// sgdCapturable(params, grads, bufs | null, lr, step, weightDecay, momentum, dampening, nesterov, found | null):
// torch.optim.SGD's update with lr and step as 0-dim device tensors. bufs (momentum > 0) start as
// zeros; a step whose step tensor is 0 takes d as the buffer (torch's first step). step is incremented
// on the device (by 0 on a skipped step).
static Napi::Value SgdCapturable(const Napi::CallbackInfo& info) {
  auto params = GetList(info[0]);
  auto grads = GetList(info[1]);
  const bool hasBufs = !(info[2].IsNull() || info[2].IsUndefined());
  auto bufs = hasBufs ? GetList(info[2]) : std::vector<at::Tensor>();
  auto& lr = Get(info[3]);
  auto& step = Get(info[4]);
  const double wd = Num(info[5]), momentum = Num(info[6]), dampening = Num(info[7]);
  const bool nesterov = Bool(info[8]);
  auto found = GetOpt(info[9]);
  if (grads.size() != params.size() || (momentum != 0 && bufs.size() != params.size()))
    throw std::invalid_argument("params, grads and momentum buffers must have the same length");
  if (params.empty()) return info.Env().Undefined();
  c10::NoGradGuard ng;
  Snapshot snap;
  if (found) {
    snap.add(params);
    if (momentum != 0) snap.add(bufs);
  }
  auto d = wd != 0 ? at::_foreach_add(grads, params, wd) : grads;
  if (momentum != 0) {
    if (dampening == 0) {
      // Zero buffers make the first step's m*0 + d exactly d: no branch needed.
      at::_foreach_mul_(bufs, momentum);
      at::_foreach_add_(bufs, d, 1 - dampening);
    } else {
      auto first = step.eq(0);
      for (size_t i = 0; i < bufs.size(); i++) bufs[i].copy_(at::where(first, d[i], bufs[i] * momentum + d[i] * (1 - dampening)));
    }
    d = nesterov ? at::_foreach_add(d, bufs, momentum) : bufs;
  }
  auto negLr = lr.neg();
  for (size_t i = 0; i < params.size(); i++) params[i].addcmul_(d[i], negLr);
  if (found) {
    auto skip = SkipFlag(*found);
    snap.restoreWhere(skip);
    step.add_(skip.logical_not());
  } else {
    step.add_(1);
  }
  return info.Env().Undefined();
}

// adamwCapturable(params, grads, expAvg, expAvgSq, lr, step, weightDecay, beta1, beta2, eps, found | null):
// torch.optim.AdamW (amsgrad off) with lr, the step count and so the bias corrections as 0-dim
// device tensors (as torch's capturable=True). step is incremented first, as in torch.
static Napi::Value AdamwCapturable(const Napi::CallbackInfo& info) {
  auto params = GetList(info[0]);
  auto grads = GetList(info[1]);
  auto m = GetList(info[2]);
  auto v = GetList(info[3]);
  auto& lr = Get(info[4]);
  auto& step = Get(info[5]);
  const double wd = Num(info[6]), b1 = Num(info[7]), b2 = Num(info[8]), eps = Num(info[9]);
  auto found = GetOpt(info[10]);
  const size_t n = params.size();
  if (grads.size() != n || m.size() != n || v.size() != n) throw std::invalid_argument("params, grads and both moment lists must have the same length");
  if (!n) return info.Env().Undefined();
  c10::NoGradGuard ng;
  Snapshot snap;
  at::Tensor skip;
  if (found) {
    skip = SkipFlag(*found);
    snap.add(params);
    snap.add(m);
    snap.add(v);
  }
  auto decay = 1 - lr * wd;
  for (size_t i = 0; i < n; i++) {
    params[i].mul_(decay);
    m[i].lerp_(grads[i], 1 - b1);
  }
  at::_foreach_mul_(v, b2);
  at::_foreach_addcmul_(v, grads, grads, 1 - b2);
  if (found) step.add_(skip.logical_not());
  else step.add_(1);
  auto bc1 = 1 - at::pow(b1, step);
  auto sqrtBc2 = (1 - at::pow(b2, step)).sqrt();
  auto stepSize = -lr / bc1;
  auto denom = at::_foreach_sqrt(v);
  for (size_t i = 0; i < n; i++) denom[i].div_(sqrtBc2);
  at::_foreach_add_(denom, eps);
  for (size_t i = 0; i < n; i++) params[i].add_(m[i] / denom[i] * stepSize);
  if (found) snap.restoreWhere(skip);
  return info.Env().Undefined();
}

// ampUnscaleCapturable(grads, scale, found): grads *= 1/scale in place; found = 1 if any is not
// finite, else 0 (torch's _amp_foreach_non_finite_check_and_unscale_; its fused kernel on CUDA).
static Napi::Value AmpUnscaleCapturable(const Napi::CallbackInfo& info) {
  auto grads = GetList(info[0]);
  auto& scale = Get(info[1]);
  auto& found = Get(info[2]);
  c10::NoGradGuard ng;
  found.zero_();
  if (grads.empty()) return info.Env().Undefined();
  auto inv = scale.to(at::kDouble).reciprocal().to(at::kFloat).reshape({});  // as torch.amp.GradScaler
  bool cuda = found.is_cuda();
  for (auto& g : grads) cuda = cuda && g.is_cuda() && g.device() == found.device();
  if (cuda) {
    at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv);
    return info.Env().Undefined();
  }
  std::vector<at::Tensor> bad;
  for (auto& g : grads) {
    g.mul_(inv);
    bad.push_back(at::isfinite(g).all().logical_not());
  }
  found.copy_(at::stack(bad).any());
  return info.Env().Undefined();
}

// ampUpdateScale(scale, growthTracker, found, growthFactor, backoffFactor, growthInterval): torch's
// _amp_update_scale_ (its kernel on CUDA): after a non-finite step scale *= backoff and the tracker
// restarts; after growthInterval finite steps in a row scale *= growth (if that stays finite).
static Napi::Value AmpUpdateScale(const Napi::CallbackInfo& info) {
  auto& scale = Get(info[0]);
  auto& tracker = Get(info[1]);
  auto& found = Get(info[2]);
  const double growth = Num(info[3]), backoff = Num(info[4]);
  const int64_t interval = Int(info[5]);
  c10::NoGradGuard ng;
  if (scale.is_cuda()) {
    at::_amp_update_scale_(scale, tracker, found, growth, backoff, interval);
    return info.Env().Undefined();
  }
  auto inf = found.gt(0);
  auto succ = tracker + 1;
  auto grown = scale * growth;
  auto grow = inf.logical_not().logical_and(succ.eq(interval));
  auto next = at::where(inf, scale * backoff, at::where(grow.logical_and(at::isfinite(grown)), grown, scale));
  tracker.copy_(at::where(inf.logical_or(grow), at::zeros_like(succ), succ));
  scale.copy_(next);
  return info.Env().Undefined();
}

void InitCapturable(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "sgdCapturable", SgdCapturable);
  Register(env, exports, "adamwCapturable", AdamwCapturable);
  Register(env, exports, "ampUnscaleCapturable", AmpUnscaleCapturable);
  Register(env, exports, "ampUpdateScale", AmpUpdateScale);
}

}  // namespace panseg
