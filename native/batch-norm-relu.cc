// Training-mode BatchNorm followed by ReLU as one autograd op over channels-last activations, the rows
// [N*H*W, C] they are in memory, float32 or bfloat16 (under autocast) with float32 parameters. ATen runs
// batch_norm (statistics in two passes, then the transform), relu_, and backward threshold_backward then
// batch_norm_backward: 12 bytes per bfloat16 element forward and 16 backward. Here the statistics take one
// pass (sums around a per-channel pivot, so no cancellation), the transform writes the ReLU's output, and
// backward recomputes the ReLU's mask from the input: 6 bytes forward, 10 backward. AVX-512 (F, BW, VL)
// only; anything else (eval mode, NCHW, other dtypes or devices) takes at::batch_norm and relu_.
#include "common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define PANSEG_FUSED_BN 1
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <vector>

#include "avx512.h"
#endif

namespace panseg {

#ifdef PANSEG_FUSED_BN
namespace {

PANSEG_AVX512 inline __m512 Load(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
PANSEG_AVX512 inline __m512 Load(const at::BFloat16* p, __mmask16 k) {
  const __m256i h = _mm256_maskz_loadu_epi16(k, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
PANSEG_AVX512 inline void Store(float* p, __mmask16 k, __m512 v) { _mm512_mask_storeu_ps(p, k, v); }
// Round to nearest even, NaN kept a (quiet) NaN: as c10::BFloat16's conversion.
PANSEG_AVX512 inline void Store(at::BFloat16* p, __mmask16 k, __m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(r));
}

// Two per-channel sums over all rows, float within a row block and double across blocks: f(firstRow,
// endRow, s, q) adds its rows into the block's accumulators s[C] and q[C].
template <typename F>
std::pair<std::vector<double>, std::vector<double>> ChannelSums(int64_t rows, int64_t C, F f) {
  std::vector<float> acc(size_t(kRowBlocks) * 2 * C, 0.f);
  ForRowBlocks(rows, [&](int64_t b, int64_t r0, int64_t r1) { f(r0, r1, acc.data() + b * 2 * C, acc.data() + b * 2 * C + C); });
  std::vector<double> s(C, 0), q(C, 0);
  for (int64_t b = 0; b < kRowBlocks; b++)
    for (int64_t c = 0; c < C; c++) s[c] += acc[b * 2 * C + c], q[c] += acc[b * 2 * C + C + c];
  return {s, q};
}

template <typename T>
PANSEG_AVX512 void SumAroundPivot(const T* x, int64_t C, const float* pivot, int64_t r0, int64_t r1, float* s, float* q) {
  for (int64_t i = r0; i < r1; i++)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 v = _mm512_sub_ps(Load(x + i * C + c, k), _mm512_maskz_loadu_ps(k, pivot + c));
      _mm512_mask_storeu_ps(s + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, s + c), v));
      _mm512_mask_storeu_ps(q + c, k, _mm512_fmadd_ps(v, v, _mm512_maskz_loadu_ps(k, q + c)));
    }
}

// y = max(0, x a + b) per channel.
template <typename T>
PANSEG_AVX512 void TransformRelu(const T* x, T* y, int64_t C, const float* a, const float* b, int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; i++)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 v = _mm512_fmadd_ps(Load(x + i * C + c, k), _mm512_maskz_loadu_ps(k, a + c), _mm512_maskz_loadu_ps(k, b + c));
      Store(y + i * C + c, k, _mm512_max_ps(_mm512_setzero_ps(), v));  // a NaN passes, as ATen's relu
    }
}

// The ReLU's gradient: dy where the forward's x a + b was > 0 (recomputed from x), else 0.
template <typename T>
PANSEG_AVX512 inline __m512 ReluGrad(__m512 v, const T* dy, const float* a, const float* b, __mmask16 k) {
  const __m512 pre = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, a), _mm512_maskz_loadu_ps(k, b));
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(pre, _mm512_setzero_ps(), _CMP_GT_OQ), Load(dy, k));
}

// Per channel sum(g) and sum(g (x - mean)), g the ReLU's gradient.
template <typename T>
PANSEG_AVX512 void GradSums(const T* x, const T* dy, int64_t C, const float* a, const float* b, const float* mean, int64_t r0, int64_t r1, float* s, float* q) {
  for (int64_t i = r0; i < r1; i++)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 v = Load(x + i * C + c, k);
      const __m512 g = ReluGrad(v, dy + i * C + c, a + c, b + c, k);
      _mm512_mask_storeu_ps(s + c, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, s + c), g));
      _mm512_mask_storeu_ps(q + c, k, _mm512_fmadd_ps(g, _mm512_sub_ps(v, _mm512_maskz_loadu_ps(k, mean + c)), _mm512_maskz_loadu_ps(k, q + c)));
    }
}

// dx = k g + x c1 + c0 per channel (BatchNorm's input gradient with g the ReLU's gradient).
template <typename T>
PANSEG_AVX512 void InputGrad(const T* x, const T* dy, T* dx, int64_t C, const float* a, const float* b, const float* k1, const float* c1, const float* c0,
                      int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; i++)
    for (int64_t c = 0; c < C; c += 16) {
      const __mmask16 k = Tail(C - c);
      const __m512 v = Load(x + i * C + c, k);
      const __m512 g = ReluGrad(v, dy + i * C + c, a + c, b + c, k);
      const __m512 r = _mm512_fmadd_ps(g, _mm512_maskz_loadu_ps(k, k1 + c), _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(k, c1 + c), _mm512_maskz_loadu_ps(k, c0 + c)));
      Store(dx + i * C + c, k, r);
    }
}

// Per-channel float32 vectors [C] for the kernels.
at::Tensor Floats(const std::vector<double>& v) {
  auto t = at::empty({int64_t(v.size())}, at::kFloat);
  for (size_t i = 0; i < v.size(); i++) t.data_ptr<float>()[i] = float(v[i]);
  return t;
}

struct BatchNormReluFn : public torch::autograd::Function<BatchNormReluFn> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const c10::optional<at::Tensor>& weight,
                            const c10::optional<at::Tensor>& bias, const c10::optional<at::Tensor>& runMean,
                            const c10::optional<at::Tensor>& runVar, double momentum, double eps) {
    RECORD_FUNCTION("panseg::batch_norm_relu", std::vector<c10::IValue>({x}));
    const int64_t C = x.size(1), M = x.numel() / C;
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    // Sums around the first row's values: the mean and variance without E[x^2] - E[x]^2's cancellation.
    at::Tensor pivot = x.select(0, 0).select(1, 0).select(1, 0).to(at::kFloat).contiguous();
    const float* pv = pivot.data_ptr<float>();
    auto [s, q] = ChannelSums(M, C, [&](int64_t r0, int64_t r1, float* sa, float* qa) {
      if (bf16) SumAroundPivot(x.data_ptr<at::BFloat16>(), C, pv, r0, r1, sa, qa);
      else SumAroundPivot(x.data_ptr<float>(), C, pv, r0, r1, sa, qa);
    });
    std::vector<double> mean(C), invstd(C), a(C), b(C), var(C);
    for (int64_t c = 0; c < C; c++) {
      const double d = s[c] / double(M);
      mean[c] = pv[c] + d;
      var[c] = std::max(q[c] / double(M) - d * d, 0.0);
      invstd[c] = 1 / std::sqrt(var[c] + eps);
      const double w = weight ? weight->data_ptr<float>()[c] : 1.0, bb = bias ? bias->data_ptr<float>()[c] : 0.0;
      a[c] = w * invstd[c];
      b[c] = bb - mean[c] * a[c];
    }
    const auto meanT = Floats(mean);
    if (runMean && runVar) {  // as ATen: the unbiased variance into the running estimate
      at::NoGradGuard guard;
      runMean->mul_(1 - momentum).add_(meanT, momentum);
      runVar->mul_(1 - momentum).add_(Floats(var), momentum * double(M) / double(M - 1));
    }
    auto scale = Floats(a), shift = Floats(b);
    auto y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    ForRows(M, [&](int64_t r0, int64_t r1) {
      if (bf16) TransformRelu(x.data_ptr<at::BFloat16>(), y.data_ptr<at::BFloat16>(), C, scale.data_ptr<float>(), shift.data_ptr<float>(), r0, r1);
      else TransformRelu(x.data_ptr<float>(), y.data_ptr<float>(), C, scale.data_ptr<float>(), shift.data_ptr<float>(), r0, r1);
    });
    ctx->save_for_backward({x});
    ctx->saved_data["mean"] = meanT;
    ctx->saved_data["invstd"] = Floats(invstd);
    ctx->saved_data["a"] = scale;
    ctx->saved_data["b"] = shift;
    if (weight) ctx->saved_data["weight"] = *weight;
    ctx->saved_data["hasBias"] = bias.has_value();
    return y;
  }

  // The gradients carry no derivative of their own: panseg's backward never builds a graph (no create_graph).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    const auto x = ctx->get_saved_variables()[0];
    RECORD_FUNCTION("panseg::batch_norm_relu_backward", std::vector<c10::IValue>({grads[0], x}));
    const int64_t C = x.size(1), M = x.numel() / C;
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    const auto dy = grads[0].to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
    const auto mean = ctx->saved_data["mean"].toTensor(), invstd = ctx->saved_data["invstd"].toTensor();
    const auto a = ctx->saved_data["a"].toTensor(), b = ctx->saved_data["b"].toTensor();
    const float *mp = mean.data_ptr<float>(), *ip = invstd.data_ptr<float>(), *ap = a.data_ptr<float>(), *bp = b.data_ptr<float>();
    auto [sg, sgx] = ChannelSums(M, C, [&](int64_t r0, int64_t r1, float* sa, float* qa) {
      if (bf16) GradSums(x.data_ptr<at::BFloat16>(), dy.data_ptr<at::BFloat16>(), C, ap, bp, mp, r0, r1, sa, qa);
      else GradSums(x.data_ptr<float>(), dy.data_ptr<float>(), C, ap, bp, mp, r0, r1, sa, qa);
    });
    const bool hasWeight = ctx->saved_data.count("weight") != 0;
    const float* wp = hasWeight ? ctx->saved_data["weight"].toTensor().data_ptr<float>() : nullptr;
    // dx = w invstd (g - mean(g) - (x - mean) invstd^2 mean(g (x - mean)))
    std::vector<double> k1(C), c1(C), c0(C), dw(C), db(C);
    for (int64_t c = 0; c < C; c++) {
      const double k = (wp ? wp[c] : 1.0) * ip[c], k3 = double(ip[c]) * ip[c] * sgx[c] / double(M);
      k1[c] = k;
      c1[c] = -k * k3;
      c0[c] = k * (k3 * mp[c] - sg[c] / double(M));
      dw[c] = sgx[c] * ip[c];
      db[c] = sg[c];
    }
    at::Tensor dx;
    if (ctx->needs_input_grad(0)) {
      dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
      auto k1t = Floats(k1), c1t = Floats(c1), c0t = Floats(c0);
      ForRows(M, [&](int64_t r0, int64_t r1) {
        if (bf16) InputGrad(x.data_ptr<at::BFloat16>(), dy.data_ptr<at::BFloat16>(), dx.data_ptr<at::BFloat16>(), C, ap, bp, k1t.data_ptr<float>(),
                            c1t.data_ptr<float>(), c0t.data_ptr<float>(), r0, r1);
        else InputGrad(x.data_ptr<float>(), dy.data_ptr<float>(), dx.data_ptr<float>(), C, ap, bp, k1t.data_ptr<float>(), c1t.data_ptr<float>(),
                       c0t.data_ptr<float>(), r0, r1);
      });
    }
    // needs_input_grad counts only the tensors given: an absent weight moves the bias to index 1.
    const bool hasBias = ctx->saved_data["hasBias"].toBool();
    const bool needW = hasWeight && ctx->needs_input_grad(1), needB = hasBias && ctx->needs_input_grad(1 + hasWeight);
    return {dx, needW ? Floats(dw) : at::Tensor(), needB ? Floats(db) : at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

bool Float32Vector(const c10::optional<at::Tensor>& t, int64_t C) {
  return !t || (t->scalar_type() == at::kFloat && t->device().is_cpu() && t->dim() == 1 && t->size(0) == C && t->is_contiguous());
}

}  // namespace

c10::optional<at::Tensor> FusedBatchNormRelu(const at::Tensor& x, const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                                             const c10::optional<at::Tensor>& runMean, const c10::optional<at::Tensor>& runVar, double momentum,
                                             double eps) {
  if (!FusedKernels() || x.dim() != 4 || !x.device().is_cpu() || x.layout() != at::kStrided) return c10::nullopt;
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16) return c10::nullopt;
  const int64_t C = x.size(1);
  if (C == 0 || x.numel() / C < 2 || !x.is_contiguous(at::MemoryFormat::ChannelsLast)) return c10::nullopt;
  if (!Float32Vector(weight, C) || !Float32Vector(bias, C) || !Float32Vector(runMean, C) || !Float32Vector(runVar, C)) return c10::nullopt;
  if (runMean.has_value() != runVar.has_value()) return c10::nullopt;
  return BatchNormReluFn::apply(x, weight, bias, runMean, runVar, momentum, eps);
}
#else
c10::optional<at::Tensor> FusedBatchNormRelu(const at::Tensor&, const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&,
                                             const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&, double, double) {
  return c10::nullopt;
}
#endif

}  // namespace panseg
