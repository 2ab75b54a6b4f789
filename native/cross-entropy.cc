// Softmax cross-entropy in one pass forward and one backward, over float32 rows [M, C]: 2D logits, or
// channels-last 4D logits, which are such rows in memory. ATen runs log_softmax, then nll_loss, and
// backward their two kernels in turn; for a segmentation batch (1M pixels x 21 classes) those take
// ~68 ms of a 1.9 s bf16 training step, 7-12x their memory floor (measured: 20 ms here). Each row is read
// once forward (max, sum of exp, the loss) and once backward (the softmax and the gradient, written once),
// keeping only each row's max and log-sum-exp between them. AVX-512 only (see FusedKernels): elsewhere,
// and for any other shape, dtype or device, the caller runs ATen's cross_entropy_loss. Same semantics as
// ATen 1.13's: class weights, ignore_index, label smoothing, and mean = sum / (the weights of the counted rows).
#include "common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PANSEG_FUSED_CE 1
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "avx512.h"
#endif

namespace panseg {

#ifdef PANSEG_FUSED_CE
namespace {

// exp(x) for x <= 0 (a logit minus its row's max): Cephes' expf range reduction and polynomial,
// scaled by 2^n with scalef; within 2 ulp of expf, and 0 below float's range as expf.
PANSEG_AVX512 inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.f), x);  // in this order a NaN passes through (max_ps returns its second operand)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_scalef_ps(p, n);
}

struct Params {
  int64_t rows, classes, ignore, reduction;
  double smoothing;
  const float* weight;  // [C] or null
  float weightSum;      // sum of the class weights (C without them)
};

// One block of rows forward: per row its max and log(sum exp(x - max)), and the loss (to `none` when
// reduction is None, else summed into *loss); *counted sums the weights of the rows not ignored.
PANSEG_AVX512 void ForwardRows(const Params& p, const float* x, const int64_t* target, int64_t r0, int64_t r1, float* rowMax,
                        float* rowLogSum, float* none, double* loss, double* counted, std::atomic<int64_t>* badTarget) {
  const int64_t C = p.classes;
  const float keep = float(1 - p.smoothing), spread = float(p.smoothing / double(C));
  double sum = 0, wsum = 0;
  for (int64_t i = r0; i < r1; i++) {
    const float* row = x + i * C;
    const int64_t t = target[i];
    if (t == p.ignore) {
      rowMax[i] = 0, rowLogSum[i] = 0;
      if (none) none[i] = 0;
      continue;
    }
    if (t < 0 || t >= C) {
      *badTarget = t;  // thrown after the loop, outside the worker threads
      continue;
    }
    __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    for (int64_t c = 0; c < C; c += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, Tail(C - c), row + c));
    const float m = _mm512_reduce_max_ps(mx);
    const __m512 mv = _mm512_set1_ps(m);
    __m512 s = _mm512_setzero_ps(), dot = _mm512_setzero_ps();
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 v = _mm512_maskz_loadu_ps(k, row + c);
      s = _mm512_mask_add_ps(s, k, s, Exp(_mm512_sub_ps(v, mv)));
      if (spread != 0) dot = _mm512_fmadd_ps(p.weight ? _mm512_maskz_loadu_ps(k, p.weight + c) : _mm512_set1_ps(1.f), v, dot);
    }
    const float logSum = std::log(_mm512_reduce_add_ps(s));
    rowMax[i] = m, rowLogSum[i] = logSum;
    const float wt = p.weight ? p.weight[t] : 1.f;
    // -log softmax(x)_t = log(sum) - (x_t - max); the smoothing term is sum_k w_k (lse - x_k)
    float l = keep * wt * (logSum - (row[t] - m));
    if (spread != 0) l += spread * (p.weightSum * (m + logSum) - _mm512_reduce_add_ps(dot));
    if (none) none[i] = l;
    sum += l, wsum += wt;
  }
  *loss = sum, *counted = wsum;
}

// One block of rows backward: d loss / d x_c = a (p_c - [c == t]) + b (W p_c - w_c), with a = (1 - eps) w_t g
// and b = eps / C g, p the row's softmax and g the row's share of the upstream gradient.
PANSEG_AVX512 void BackwardRows(const Params& p, const float* x, const int64_t* target, const float* rowMax, const float* rowLogSum,
                         const float* gradOut, float gradScale, int64_t r0, int64_t r1, float* gx) {
  const int64_t C = p.classes;
  for (int64_t i = r0; i < r1; i++) {
    const float* row = x + i * C;
    float* out = gx + i * C;
    const int64_t t = target[i];
    if (t == p.ignore || t < 0 || t >= C) {
      for (int64_t c = 0; c < C; c += 16) _mm512_mask_storeu_ps(out + c, Tail(C - c), _mm512_setzero_ps());
      continue;
    }
    const float g = (gradOut[p.reduction == at::Reduction::None ? i : 0]) * gradScale;
    const float a = float(1 - p.smoothing) * (p.weight ? p.weight[t] : 1.f) * g, b = float(p.smoothing / double(C)) * g;
    const __m512 coef = _mm512_set1_ps(a + b * p.weightSum), bv = _mm512_set1_ps(b);
    const __m512 mv = _mm512_set1_ps(rowMax[i]), lv = _mm512_set1_ps(rowLogSum[i]);
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 prob = Exp(_mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + c), mv), lv));
      const __m512 w = p.weight ? _mm512_maskz_loadu_ps(k, p.weight + c) : _mm512_set1_ps(1.f);
      _mm512_mask_storeu_ps(out + c, k, _mm512_fnmadd_ps(bv, w, _mm512_mul_ps(coef, prob)));
    }
    out[t] -= a;
  }
}

struct FusedCrossEntropyFn : public torch::autograd::Function<FusedCrossEntropyFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& target,
                            const c10::optional<at::Tensor>& classWeight, int64_t reduction, int64_t ignore, double smoothing) {
    const at::Tensor weight = classWeight.value_or(at::Tensor());
    RECORD_FUNCTION("panseg::cross_entropy", std::vector<c10::IValue>({x, target}));
    Params p{x.size(0), x.size(1), ignore, reduction, smoothing, weight.defined() ? weight.data_ptr<float>() : nullptr, 0.f};
    p.weightSum = weight.defined() ? weight.sum().item<float>() : float(p.classes);
    auto rowMax = at::empty({p.rows}, x.options()), rowLogSum = at::empty({p.rows}, x.options());
    at::Tensor none = reduction == at::Reduction::None ? at::empty({p.rows}, x.options()) : at::Tensor();
    std::vector<double> loss(kRowBlocks, 0), counted(kRowBlocks, 0);
    std::atomic<int64_t> bad{0};  // never a valid out-of-range target: 0 < C
    ForRowBlocks(p.rows, [&](int64_t b, int64_t r0, int64_t r1) {
      ForwardRows(p, x.data_ptr<float>(), target.data_ptr<int64_t>(), r0, r1, rowMax.data_ptr<float>(), rowLogSum.data_ptr<float>(),
                  none.defined() ? none.data_ptr<float>() : nullptr, &loss[b], &counted[b], &bad);
    });
    if (bad.load() != 0) throw std::invalid_argument("Target " + std::to_string(bad.load()) + " is out of bounds.");
    double sum = 0, weights = 0;
    for (int64_t b = 0; b < kRowBlocks; b++) sum += loss[b], weights += counted[b];
    ctx->save_for_backward({x, target, rowMax, rowLogSum});
    if (weight.defined()) ctx->saved_data["weight"] = weight;  // no gradient, as ATen's nll_loss
    ctx->saved_data["reduction"] = reduction;
    ctx->saved_data["ignore"] = ignore;
    ctx->saved_data["smoothing"] = smoothing;
    ctx->saved_data["counted"] = weights;
    ctx->saved_data["weightSum"] = double(p.weightSum);
    if (reduction == at::Reduction::None) return none;
    return at::scalar_tensor(reduction == at::Reduction::Mean ? sum / weights : sum, x.options());
  }

  // The gradient carries no derivative of its own: panseg's backward never builds a graph (no create_graph).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &target = saved[1], &rowMax = saved[2], &rowLogSum = saved[3];
    const at::Tensor weight = ctx->saved_data.count("weight") ? ctx->saved_data["weight"].toTensor() : at::Tensor();
    RECORD_FUNCTION("panseg::cross_entropy_backward", std::vector<c10::IValue>({grads[0], x}));
    const int64_t reduction = ctx->saved_data["reduction"].toInt();
    Params p{x.size(0), x.size(1), ctx->saved_data["ignore"].toInt(), reduction, ctx->saved_data["smoothing"].toDouble(),
             weight.defined() ? weight.data_ptr<float>() : nullptr, float(ctx->saved_data["weightSum"].toDouble())};
    const auto g = grads[0].to(at::kFloat).contiguous();
    const float scale = reduction == at::Reduction::Mean ? float(1.0 / ctx->saved_data["counted"].toDouble()) : 1.f;
    auto gx = at::empty_like(x);
    ForRows(p.rows, [&](int64_t r0, int64_t r1) {
      BackwardRows(p, x.data_ptr<float>(), target.data_ptr<int64_t>(), rowMax.data_ptr<float>(), rowLogSum.data_ptr<float>(),
                   g.data_ptr<float>(), scale, r0, r1, gx.data_ptr<float>());
    });
    return {gx, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

c10::optional<at::Tensor> FusedCrossEntropy(const at::Tensor& rows, const at::Tensor& target, const c10::optional<at::Tensor>& weight,
                                            int64_t reduction, int64_t ignore, double smoothing) {
  if (!FusedKernels() || rows.dim() != 2 || rows.size(0) == 0 || rows.size(1) == 0 || !rows.is_contiguous()) return c10::nullopt;
  if (rows.scalar_type() != at::kFloat || !rows.device().is_cpu() || rows.layout() != at::kStrided) return c10::nullopt;
  if (target.dim() != 1 || target.size(0) != rows.size(0) || target.scalar_type() != at::kLong || !target.device().is_cpu()) return c10::nullopt;
  if (weight && (weight->scalar_type() != at::kFloat || !weight->device().is_cpu() || weight->dim() != 1 || weight->size(0) != rows.size(1)))
    return c10::nullopt;
  return FusedCrossEntropyFn::apply(rows, target.contiguous(), weight ? c10::optional<at::Tensor>(weight->contiguous()) : c10::nullopt, reduction, ignore, smoothing);
}
#else
c10::optional<at::Tensor> FusedCrossEntropy(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, int64_t, int64_t, double) {
  return c10::nullopt;
}
#endif

}  // namespace panseg
