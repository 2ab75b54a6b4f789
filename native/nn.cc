// Neural-network ops: convolution, normalization, pooling, resampling, losses.
#include "common.h"

namespace panseg {

static int64_t Reduction(const Napi::Value& v) {
  auto s = v.As<Napi::String>().Utf8Value();
  if (s == "none") return at::Reduction::None;
  if (s == "sum") return at::Reduction::Sum;
  if (s == "mean") return at::Reduction::Mean;
  throw std::invalid_argument("unknown reduction " + s);
}

// conv2d(x, w, b | null, stride, padding, dilation, groups)
static Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  const auto &x = Get(info[0]), &w = Get(info[1]);
  const auto b = GetOpt(info[2]);
  const auto stride = Ints(info[3]), padding = Ints(info[4]), dilation = Ints(info[5]);
  const auto groups = Int(info[6]);
  if (auto y = WinogradConv2d(x, w, b, stride, padding, dilation, groups)) return Wrap(info.Env(), std::move(*y));
  return Wrap(info.Env(), at::conv2d(x, w, b, stride, padding, dilation, groups));
}

// batchNorm(x, weight | null, bias | null, runMean | null, runVar | null, training, momentum, eps, relu)
// relu: followed by an (in-place) ReLU, fused in training where batch-norm-relu.cc applies.
static Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  const auto& x = Get(info[0]);
  const auto weight = GetOpt(info[1]), bias = GetOpt(info[2]), runMean = GetOpt(info[3]), runVar = GetOpt(info[4]);
  const bool training = Bool(info[5]), relu = Bool(info[8]);
  const double momentum = Num(info[6]), eps = Num(info[7]);
  if (training && relu) {
    if (auto y = FusedBatchNormRelu(x, weight, bias, runMean, runVar, momentum, eps)) return Wrap(info.Env(), std::move(*y));
  }
  auto y = at::batch_norm(x, weight, bias, runMean, runVar, training, momentum, eps, /*cudnn_enabled=*/true);
  return Wrap(info.Env(), relu ? y.relu_() : y);
}

// maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
static Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::max_pool2d(Get(info[0]), Ints(info[1]), Ints(info[2]), Ints(info[3]), Ints(info[4]), Bool(info[5])));
}

// avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
static Napi::Value AvgPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::avg_pool2d(Get(info[0]), Ints(info[1]), Ints(info[2]), Ints(info[3]), Bool(info[4]), Bool(info[5])));
}

static Napi::Value AdaptiveAvgPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::adaptive_avg_pool2d(Get(info[0]), Ints(info[1])));
}
static Napi::Value AdaptiveMaxPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), std::get<0>(at::adaptive_max_pool2d(Get(info[0]), Ints(info[1]))));
}

// interpolate(x, mode, size | null, scales | null, alignCorners)
// As torch.nn.functional.interpolate: with a scale factor the kernel gets the scale, not the size ratio.
static Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  auto& x = Get(info[0]);
  auto mode = info[1].As<Napi::String>().Utf8Value();
  c10::optional<std::vector<int64_t>> size;
  c10::optional<std::vector<double>> scales;
  if (!info[2].IsNull()) size = Ints(info[2]);
  if (!info[3].IsNull()) {
    auto arr = info[3].As<Napi::Array>();
    scales = std::vector<double>{Num(arr.Get(0u)), Num(arr.Get(1u))};
  }
  at::OptionalIntArrayRef osize = size ? at::OptionalIntArrayRef(*size) : c10::nullopt;
  c10::optional<at::ArrayRef<double>> oscales = scales ? c10::optional<at::ArrayRef<double>>(*scales) : c10::nullopt;
  at::Tensor r;
  if (mode == "bilinear") r = at::upsample_bilinear2d(x, osize, Bool(info[4]), oscales);
  else if (mode == "bicubic") r = at::upsample_bicubic2d(x, osize, Bool(info[4]), oscales);
  else if (mode == "nearest") r = at::upsample_nearest2d(x, osize, oscales);
  else if (mode == "nearest-exact") r = at::_upsample_nearest_exact2d(x, osize, oscales);
  else throw std::invalid_argument("unknown mode " + mode);
  return Wrap(info.Env(), r);
}

static Napi::Value Linear(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::linear(Get(info[0]), Get(info[1]), GetOpt(info[2])));
}

// crossEntropy(logits, target, weight | null, reduction, ignoreIndex, labelSmoothing)
// Channels-last logits [N, C, H, W] are taken as the [N*H*W, C] rows they already are in memory: log_softmax
// over dim 1 would first copy them into NCHW order (a transposing copy of the full-size logits, ~40 ms of
// a 512 px batch-4 training step). Rows go to the fused kernel (cross-entropy.cc) where it applies, else to
// ATen's row kernels. Same loss, summed in another order.
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const auto& x = Get(info[0]);
  const auto& target = Get(info[1]);
  const auto weight = GetOpt(info[2]);
  const auto reduction = Reduction(info[3]);
  const auto ignore = Int(info[4]);
  const auto smoothing = Num(info[5]);
  const bool channelsLast = x.dim() == 4 && target.dim() == 3 && x.size(1) > 1 && !x.is_contiguous() && x.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (channelsLast || (x.dim() == 2 && target.dim() == 1)) {
    auto rows = channelsLast ? x.permute({0, 2, 3, 1}).reshape({-1, x.size(1)}) : x;
    auto flat = target.reshape({-1});
    auto loss = FusedCrossEntropy(rows, flat, weight, reduction, ignore, smoothing);
    if (!loss) loss = at::cross_entropy_loss(rows, flat, weight, reduction, ignore, smoothing);
    return Wrap(info.Env(), reduction == at::Reduction::None ? loss->view(target.sizes()) : *loss);
  }
  return Wrap(info.Env(), at::cross_entropy_loss(x, target, weight, reduction, ignore, smoothing));
}

// nllLoss(logProbs, target, weight | null, reduction, ignoreIndex); 4D input uses nll_loss2d as PyTorch does.
static Napi::Value NllLoss(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::nll_loss_nd(Get(info[0]), Get(info[1]), GetOpt(info[2]), Reduction(info[3]), Int(info[4])));
}

static Napi::Value BceWithLogits(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::binary_cross_entropy_with_logits(Get(info[0]), Get(info[1]), GetOpt(info[2]), GetOpt(info[3]),
                                                               Reduction(info[4])));
}

static Napi::Value Dropout(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::dropout(Get(info[0]), Num(info[1]), Bool(info[2]))); }
// Zeroes whole channels: one Bernoulli draw per [n, c] (torch.nn.Dropout2d's kernel).
static Napi::Value FeatureDropout(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::feature_dropout(Get(info[0]), Num(info[1]), Bool(info[2])));
}

// groupNorm(x, numGroups, weight | null, bias | null, eps)
static Napi::Value GroupNorm(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::group_norm(Get(info[0]), Int(info[1]), GetOpt(info[2]), GetOpt(info[3]), Num(info[4]), /*cudnn_enabled=*/true));
}

// pad(x, pads, mode, value)
static Napi::Value Pad(const Napi::CallbackInfo& info) {
  auto mode = info[2].As<Napi::String>().Utf8Value();
  auto& x = Get(info[0]);
  auto pads = Ints(info[1]);
  if (mode == "constant") return Wrap(info.Env(), at::constant_pad_nd(x, pads, Num(info[3])));
  return Wrap(info.Env(), at::pad(x, pads, mode, c10::nullopt));
}

static Napi::Value OneHot(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::one_hot(Get(info[0]), Int(info[1]))); }

void InitNN(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "conv2d", Conv2d);
  Register(env, exports, "batchNorm", BatchNorm);
  Register(env, exports, "groupNorm", GroupNorm);
  Register(env, exports, "maxPool2d", MaxPool2d);
  Register(env, exports, "avgPool2d", AvgPool2d);
  Register(env, exports, "adaptiveAvgPool2d", AdaptiveAvgPool2d);
  Register(env, exports, "adaptiveMaxPool2d", AdaptiveMaxPool2d);
  Register(env, exports, "interpolate", Interpolate);
  Register(env, exports, "linear", Linear);
  Register(env, exports, "crossEntropy", CrossEntropy);
  Register(env, exports, "nllLoss", NllLoss);
  Register(env, exports, "bceWithLogits", BceWithLogits);
  Register(env, exports, "dropout", Dropout);
  Register(env, exports, "featureDropout", FeatureDropout);
  Register(env, exports, "pad", Pad);
  Register(env, exports, "oneHot", OneHot);
}

}  // namespace panseg
