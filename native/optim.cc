// Optimizer arithmetic over many tensors in one call (PyTorch's foreach=True paths): one native
// call per step instead of several ops per parameter, and multi-tensor kernels on the GPU.
#include "common.h"

#include <ATen/Parallel.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <torch/version.h>

#include <cmath>

namespace panseg {

// ---- fused CPU updates ----
// On the CPU the foreach ops still make one pass over memory per op (AdamW: about ten passes over
// parameter-sized tensors, a fifth of a small-crop training step). The fused loops below make one:
// each element of the parameter, gradient and state is read and written once. They run the same
// formulas in the same order as the per-parameter paths in src/train/optimizers.ts, in the
// parameter's own precision; results agree with those to rounding.

// Tensors the fused loop can treat as flat arrays: CPU, float or double, all one dtype, dense and
// laid out alike (a channels-last weight has a channels-last gradient and state). Strides of size-1
// dimensions do not move through memory, so they may differ (a 1x1 convolution's gradient).
static bool Fusable(const std::vector<const at::Tensor*>& ts) {
  const at::Tensor& p = *ts[0];
  if (!p.device().is_cpu() || (p.scalar_type() != at::kFloat && p.scalar_type() != at::kDouble)) return false;
  if (p.layout() != at::kStrided || !p.is_non_overlapping_and_dense()) return false;
  for (const at::Tensor* t : ts) {
    if (!t->defined() || t->scalar_type() != p.scalar_type() || !t->device().is_cpu() || t->layout() != at::kStrided ||
        t->sizes() != p.sizes())
      return false;
    for (int64_t d = 0; d < p.dim(); d++)
      if (p.size(d) > 1 && t->stride(d) != p.stride(d)) return false;
  }
  return true;
}

// The loops are written for the compiler to vectorize: branch-free bodies (the options pick a loop
// instantiation), restrict pointers, O3 for this stretch (-fno-math-errno is global so sqrt
// vectorizes), and on x86-64 an AVX2/FMA clone chosen at load time beside the baseline one.
#pragma GCC push_options
#pragma GCC optimize("O3")
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define PANSEG_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define PANSEG_CLONES
#endif

enum class Momentum { kNone, kFirst, kGoing };

template <class T, bool kDecay, Momentum kMom, bool kNesterov>
PANSEG_CLONES static void SgdLoop(T* __restrict P, const T* __restrict G, T* __restrict B, int64_t n, T lr, T wd, T mom, T keep) {
  for (int64_t i = 0; i < n; i++) {
    T d = G[i];
    if constexpr (kDecay) d = d + wd * P[i];
    if constexpr (kMom != Momentum::kNone) {
      T m;
      if constexpr (kMom == Momentum::kFirst) m = d;
      else m = B[i] * mom + keep * d;
      B[i] = m;
      if constexpr (kNesterov) d = d + mom * m;
      else d = m;
    }
    P[i] = P[i] + (-lr) * d;
  }
}

// torch.lerp's two forms, chosen by the weight: kLow when it is below 0.5.
template <class T, bool kLow>
PANSEG_CLONES static void AdamwLoop(T* __restrict P, const T* __restrict G, T* __restrict M, T* __restrict V, int64_t n, T decay, T w1,
                                    T b2, T w2, T sqrtBc2, T eps, T stepSize) {
  for (int64_t i = 0; i < n; i++) {
    const T gi = G[i], mo = M[i];
    const T mi = kLow ? mo + w1 * (gi - mo) : gi - (gi - mo) * (T(1) - w1);
    const T vi = V[i] * b2 + w2 * gi * gi;
    const T denom = std::sqrt(vi) / sqrtBc2 + eps;
    M[i] = mi;
    V[i] = vi;
    P[i] = P[i] * decay + stepSize * mi / denom;
  }
}
#pragma GCC pop_options

constexpr int64_t kGrain = 1 << 16;  // elements below which one thread does the whole tensor

// Runs f(begin, end) over [0, n) split across libtorch's intra-op threads: memory bandwidth grows
// with the cores reading. OpenMP is libtorch's own runtime here (see scripts/build-addon.mjs); a
// build without it runs f on one thread.
template <class F>
static void Split(int64_t n, F f) {
#ifdef _OPENMP
  const int threads = static_cast<int>(std::min<int64_t>(at::get_num_threads(), n / kGrain));
  if (threads > 1 && !omp_in_parallel()) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num();
      f(n * t / threads, n * (t + 1) / threads);
    }
    return;
  }
#endif
  f(0, n);
}

template <class T, bool kDecay, Momentum kMom>
static void SgdPick(bool nesterov, T* P, const T* G, T* B, int64_t n, T lr, T wd, T mom, T keep) {
  auto loop = nesterov ? SgdLoop<T, kDecay, kMom, true> : SgdLoop<T, kDecay, kMom, false>;
  Split(n, [&](int64_t b, int64_t e) { loop(P + b, G + b, B ? B + b : nullptr, e - b, lr, wd, mom, keep); });
}

template <class T>
static void SgdFused(at::Tensor& p, const at::Tensor& g, at::Tensor* buf, bool first, double lr, double wd, double momentum,
                     double dampening, bool nesterov) {
  T* P = p.data_ptr<T>();
  const T* G = g.data_ptr<T>();
  T* B = buf ? buf->data_ptr<T>() : nullptr;
  const int64_t n = p.numel();
  const T a = static_cast<T>(lr), w = static_cast<T>(wd), m = static_cast<T>(momentum), k = static_cast<T>(1 - dampening);
  const Momentum mode = !B ? Momentum::kNone : first ? Momentum::kFirst : Momentum::kGoing;
  if (wd != 0) {
    if (mode == Momentum::kNone) SgdPick<T, true, Momentum::kNone>(nesterov, P, G, B, n, a, w, m, k);
    else if (mode == Momentum::kFirst) SgdPick<T, true, Momentum::kFirst>(nesterov, P, G, B, n, a, w, m, k);
    else SgdPick<T, true, Momentum::kGoing>(nesterov, P, G, B, n, a, w, m, k);
  } else {
    if (mode == Momentum::kNone) SgdPick<T, false, Momentum::kNone>(nesterov, P, G, B, n, a, w, m, k);
    else if (mode == Momentum::kFirst) SgdPick<T, false, Momentum::kFirst>(nesterov, P, G, B, n, a, w, m, k);
    else SgdPick<T, false, Momentum::kGoing>(nesterov, P, G, B, n, a, w, m, k);
  }
}

template <class T>
static void AdamwFused(at::Tensor& p, const at::Tensor& g, at::Tensor& m, at::Tensor& v, double lr, double wd, double b1, double b2,
                       double eps, double step) {
  const double bc1 = 1 - std::pow(b1, step), bc2 = 1 - std::pow(b2, step);
  const T w1 = static_cast<T>(1 - b1);
  auto loop = w1 < T(0.5) ? AdamwLoop<T, true> : AdamwLoop<T, false>;
  T *P = p.data_ptr<T>(), *M = m.data_ptr<T>(), *V = v.data_ptr<T>();
  const T* G = g.data_ptr<T>();
  const T decay = static_cast<T>(1 - lr * wd), tb2 = static_cast<T>(b2), w2 = static_cast<T>(1 - b2);
  const T sqrtBc2 = static_cast<T>(std::sqrt(bc2)), teps = static_cast<T>(eps), stepSize = static_cast<T>(-lr / bc1);
  Split(p.numel(), [&](int64_t b, int64_t e) { loop(P + b, G + b, M + b, V + b, e - b, decay, w1, tb2, w2, sqrtBc2, teps, stepSize); });
}

// The foreach ops of one SGD step; returns the new momentum buffers on a first step with momentum.
static std::vector<at::Tensor> SgdOps(std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads, bool first,
                                      std::vector<at::Tensor>& bufs, double lr, double wd, double momentum, double dampening,
                                      bool nesterov) {
  auto d = wd != 0 ? at::_foreach_add(grads, params, wd) : grads;
  std::vector<at::Tensor> made;
  if (momentum != 0) {
    if (first) {
      for (auto& t : d) made.push_back(t.clone());
    } else {
      at::_foreach_mul_(bufs, momentum);
      at::_foreach_add_(bufs, d, 1 - dampening);
    }
    auto& b = first ? made : bufs;
    d = nesterov ? at::_foreach_add(d, b, momentum) : b;
  }
  at::_foreach_add_(params, d, -lr);
  return made;
}

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
  // Fusable parameters take one pass each; the others (bfloat16, mixed layouts, CUDA) the foreach ops.
  std::vector<at::Tensor> made;
  if (first && momentum != 0) made.resize(params.size());
  std::vector<at::Tensor> restP, restG, restB;
  std::vector<size_t> restAt;
  for (size_t i = 0; i < params.size(); i++) {
    const bool hasBuf = momentum != 0 && !first;
    if (Fusable(hasBuf ? std::vector<const at::Tensor*>{&params[i], &grads[i], &bufs[i]} : std::vector<const at::Tensor*>{&params[i], &grads[i]})) {
      at::Tensor* buf = nullptr;
      if (momentum != 0) {
        if (first) made[i] = at::empty_like(params[i]);  // dense and laid out as the parameter
        buf = first ? &made[i] : &bufs[i];
      }
      if (params[i].scalar_type() == at::kFloat) SgdFused<float>(params[i], grads[i], buf, first, lr, wd, momentum, dampening, nesterov);
      else SgdFused<double>(params[i], grads[i], buf, first, lr, wd, momentum, dampening, nesterov);
      continue;
    }
    restAt.push_back(i);
    restP.push_back(params[i]);
    restG.push_back(grads[i]);
    if (!first && momentum != 0) restB.push_back(bufs[i]);
  }
  if (!restP.empty()) {
    auto restMade = SgdOps(restP, restG, first, restB, lr, wd, momentum, dampening, nesterov);
    for (size_t k = 0; k < restMade.size(); k++) made[restAt[k]] = restMade[k];
  }
  return first && momentum != 0 ? WrapList(info.Env(), made) : info.Env().Undefined();
}

// The foreach ops of one AdamW step.
static void AdamwOps(std::vector<at::Tensor>& params, std::vector<at::Tensor>& grads, std::vector<at::Tensor>& m,
                     std::vector<at::Tensor>& v, double lr, double wd, double b1, double b2, double eps, double step) {
  const size_t n = params.size();
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
  std::vector<at::Tensor> rp, rg, rm, rv;
  for (size_t i = 0; i < n; i++) {
    if (Fusable({&params[i], &grads[i], &m[i], &v[i]})) {
      if (params[i].scalar_type() == at::kFloat) AdamwFused<float>(params[i], grads[i], m[i], v[i], lr, wd, b1, b2, eps, step);
      else AdamwFused<double>(params[i], grads[i], m[i], v[i], lr, wd, b1, b2, eps, step);
    } else {
      rp.push_back(params[i]);
      rg.push_back(grads[i]);
      rm.push_back(m[i]);
      rv.push_back(v[i]);
    }
  }
  if (!rp.empty()) AdamwOps(rp, rg, rm, rv, lr, wd, b1, b2, eps, step);
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
