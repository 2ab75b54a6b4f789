// Elementwise math, comparisons, reductions and the in-place updates optimizers need.
// Ops of one family share an entry point and are picked by index; the name tables are
// exported so TypeScript maps names to indices without a duplicated list.
#include "common.h"

namespace panseg {

using Unary = at::Tensor (*)(const at::Tensor&);
static const std::pair<const char*, Unary> kUnary[] = {
    {"neg", [](const at::Tensor& t) { return at::neg(t); }},
    {"exp", [](const at::Tensor& t) { return at::exp(t); }},
    {"log", [](const at::Tensor& t) { return at::log(t); }},
    {"sqrt", [](const at::Tensor& t) { return at::sqrt(t); }},
    {"rsqrt", [](const at::Tensor& t) { return at::rsqrt(t); }},
    {"abs", [](const at::Tensor& t) { return at::abs(t); }},
    {"relu", [](const at::Tensor& t) { return at::relu(t); }},
    {"sigmoid", [](const at::Tensor& t) { return at::sigmoid(t); }},
    {"tanh", [](const at::Tensor& t) { return at::tanh(t); }},
    {"gelu", [](const at::Tensor& t) { return at::gelu(t); }},
    {"sign", [](const at::Tensor& t) { return at::sign(t); }},
    {"floor", [](const at::Tensor& t) { return at::floor(t); }},
    {"ceil", [](const at::Tensor& t) { return at::ceil(t); }},
    {"round", [](const at::Tensor& t) { return at::round(t); }},
    {"sin", [](const at::Tensor& t) { return at::sin(t); }},
    {"cos", [](const at::Tensor& t) { return at::cos(t); }},
    {"log1p", [](const at::Tensor& t) { return at::log1p(t); }},
    {"reciprocal", [](const at::Tensor& t) { return at::reciprocal(t); }},
    {"square", [](const at::Tensor& t) { return at::square(t); }},
    {"logicalNot", [](const at::Tensor& t) { return at::logical_not(t); }},
    {"isnan", [](const at::Tensor& t) { return at::isnan(t); }},
    {"isfinite", [](const at::Tensor& t) { return at::isfinite(t); }},
};

using Binary = at::Tensor (*)(const at::Tensor&, const at::Tensor&);
static const std::pair<const char*, Binary> kBinary[] = {
    {"add", [](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b); }},
    {"sub", [](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b); }},
    {"mul", [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); }},
    {"div", [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); }},
    {"pow", [](const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); }},
    {"maximum", [](const at::Tensor& a, const at::Tensor& b) { return at::maximum(a, b); }},
    {"minimum", [](const at::Tensor& a, const at::Tensor& b) { return at::minimum(a, b); }},
    {"eq", [](const at::Tensor& a, const at::Tensor& b) { return at::eq(a, b); }},
    {"ne", [](const at::Tensor& a, const at::Tensor& b) { return at::ne(a, b); }},
    {"gt", [](const at::Tensor& a, const at::Tensor& b) { return at::gt(a, b); }},
    {"ge", [](const at::Tensor& a, const at::Tensor& b) { return at::ge(a, b); }},
    {"lt", [](const at::Tensor& a, const at::Tensor& b) { return at::lt(a, b); }},
    {"le", [](const at::Tensor& a, const at::Tensor& b) { return at::le(a, b); }},
    {"logicalAnd", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_and(a, b); }},
    {"logicalOr", [](const at::Tensor& a, const at::Tensor& b) { return at::logical_or(a, b); }},
    {"remainder", [](const at::Tensor& a, const at::Tensor& b) { return at::remainder(a, b); }},
    {"floorDivide", [](const at::Tensor& a, const at::Tensor& b) { return at::floor_divide(a, b); }},
};

using Scalar = at::Tensor (*)(const at::Tensor&, const at::Scalar&);
static const std::pair<const char*, Scalar> kScalar[] = {
    {"add", [](const at::Tensor& a, const at::Scalar& s) { return at::add(a, s); }},
    {"sub", [](const at::Tensor& a, const at::Scalar& s) { return at::sub(a, s); }},
    {"mul", [](const at::Tensor& a, const at::Scalar& s) { return at::mul(a, s); }},
    {"div", [](const at::Tensor& a, const at::Scalar& s) { return at::div(a, s); }},
    {"pow", [](const at::Tensor& a, const at::Scalar& s) { return at::pow(a, s); }},
    {"maximum", [](const at::Tensor& a, const at::Scalar& s) { return at::clamp_min(a, s); }},
    {"minimum", [](const at::Tensor& a, const at::Scalar& s) { return at::clamp_max(a, s); }},
    {"eq", [](const at::Tensor& a, const at::Scalar& s) { return at::eq(a, s); }},
    {"ne", [](const at::Tensor& a, const at::Scalar& s) { return at::ne(a, s); }},
    {"gt", [](const at::Tensor& a, const at::Scalar& s) { return at::gt(a, s); }},
    {"ge", [](const at::Tensor& a, const at::Scalar& s) { return at::ge(a, s); }},
    {"lt", [](const at::Tensor& a, const at::Scalar& s) { return at::lt(a, s); }},
    {"le", [](const at::Tensor& a, const at::Scalar& s) { return at::le(a, s); }},
    {"remainder", [](const at::Tensor& a, const at::Scalar& s) { return at::remainder(a, s); }},
    {"rsub", [](const at::Tensor& a, const at::Scalar& s) { return at::rsub(a, s); }},
    {"rdiv", [](const at::Tensor& a, const at::Scalar& s) { return at::reciprocal(a) * s; }},
    {"rpow", [](const at::Tensor& a, const at::Scalar& s) { return at::pow(s, a); }},
};

// Scalars keep integer-ness so int tensors stay int (as in PyTorch).
static at::Scalar ToScalar(const Napi::Value& v) {
  if (v.IsBoolean()) return at::Scalar(Bool(v));
  double d = Num(v);
  if (d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.0e15) return at::Scalar(static_cast<int64_t>(d));
  return at::Scalar(d);
}

template <typename T, size_t N>
static Napi::Value Names(Napi::Env env, const std::pair<const char*, T> (&table)[N]) {
  auto arr = Napi::Array::New(env, N);
  for (size_t i = 0; i < N; i++) arr.Set(i, table[i].first);
  return arr;
}

template <typename T, size_t N>
static T Pick(const std::pair<const char*, T> (&table)[N], const Napi::Value& v) {
  int64_t i = Int(v);
  if (i < 0 || i >= static_cast<int64_t>(N)) throw std::invalid_argument("unknown op index");
  return table[i].second;
}

static Napi::Value UnaryOp(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Pick(kUnary, info[0])(Get(info[1]))); }
static Napi::Value BinaryOp(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Pick(kBinary, info[0])(Get(info[1]), Get(info[2])));
}
static Napi::Value ScalarOp(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Pick(kScalar, info[0])(Get(info[1]), ToScalar(info[2])));
}

// reduce(name, t, dims | null, keepdim)
static Napi::Value Reduce(const Napi::CallbackInfo& info) {
  auto name = info[0].As<Napi::String>().Utf8Value();
  auto& t = Get(info[1]);
  bool all = info[2].IsNull();
  auto dims = all ? std::vector<int64_t>{} : Ints(info[2]);
  bool keep = Bool(info[3]);
  at::Tensor r;
  if (name == "sum") r = all ? t.sum() : t.sum(dims, keep);
  else if (name == "mean") r = all ? t.mean() : t.mean(dims, keep);
  else if (name == "amax") r = t.amax(dims, keep);
  else if (name == "amin") r = t.amin(dims, keep);
  else if (name == "var") r = all ? t.var() : t.var(dims, /*unbiased=*/true, keep);
  else if (name == "varBiased") r = all ? t.var(false) : t.var(dims, /*unbiased=*/false, keep);
  else if (name == "prod") r = all ? t.prod() : t.prod(dims[0], keep);
  else if (name == "all") r = all ? t.all() : t.all(dims[0], keep);
  else if (name == "any") r = all ? t.any() : t.any(dims[0], keep);
  else if (name == "argmax") r = all ? t.argmax() : t.argmax(dims[0], keep);
  else if (name == "argmin") r = all ? t.argmin() : t.argmin(dims[0], keep);
  else if (name == "norm") r = all ? t.norm() : at::norm(t, 2, dims, keep);
  else throw std::invalid_argument("unknown reduction " + name);
  return Wrap(info.Env(), r);
}

// addScaled(a, b, alpha) = a + alpha * b in one pass (torch.add's alpha).
static Napi::Value AddScaled(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::add(Get(info[0]), Get(info[1]), ToScalar(info[2])));
}

static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  auto lo = NumOpt(info[1]);
  auto hi = NumOpt(info[2]);
  c10::optional<at::Scalar> l, h;
  if (lo) l = *lo;
  if (hi) h = *hi;
  return Wrap(info.Env(), at::clamp(Get(info[0]), l, h));
}
static Napi::Value Where(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::where(Get(info[0]), Get(info[1]), Get(info[2]))); }
static Napi::Value Matmul(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::matmul(Get(info[0]), Get(info[1]))); }
static Napi::Value Softmax(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::softmax(Get(info[0]), Int(info[1]))); }
static Napi::Value LogSoftmax(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::log_softmax(Get(info[0]), Int(info[1]))); }
static Napi::Value Bincount(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::bincount(Get(info[0]), {}, Int(info[1])));
}
static Napi::Value Topk(const Napi::CallbackInfo& info) {
  auto r = at::topk(Get(info[0]), Int(info[1]), Int(info[2]), Bool(info[3]));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}

// In-place updates. They bypass autograd checks only where PyTorch's optimizers do (under no_grad in TS).
// `other` is a tensor handle or, when the last argument is true, a number (handles are numbers too).
static Napi::Value Add_(const Napi::CallbackInfo& info) {
  auto& a = Get(info[0]);
  if (Bool(info[3])) a.add_(ToScalar(info[1]), ToScalar(info[2]));
  else a.add_(Get(info[1]), ToScalar(info[2]));
  return info.Env().Undefined();
}
static Napi::Value Mul_(const Napi::CallbackInfo& info) {
  auto& a = Get(info[0]);
  if (Bool(info[2])) a.mul_(ToScalar(info[1]));
  else a.mul_(Get(info[1]));
  return info.Env().Undefined();
}
static Napi::Value Div_(const Napi::CallbackInfo& info) {
  auto& a = Get(info[0]);
  if (Bool(info[2])) a.div_(ToScalar(info[1]));
  else a.div_(Get(info[1]));
  return info.Env().Undefined();
}
static Napi::Value Addcmul_(const Napi::CallbackInfo& info) {
  Get(info[0]).addcmul_(Get(info[1]), Get(info[2]), ToScalar(info[3]));
  return info.Env().Undefined();
}
static Napi::Value Addcdiv_(const Napi::CallbackInfo& info) {
  Get(info[0]).addcdiv_(Get(info[1]), Get(info[2]), ToScalar(info[3]));
  return info.Env().Undefined();
}
static Napi::Value Lerp_(const Napi::CallbackInfo& info) {
  Get(info[0]).lerp_(Get(info[1]), ToScalar(info[2]));
  return info.Env().Undefined();
}
static Napi::Value Zero_(const Napi::CallbackInfo& info) {
  Get(info[0]).zero_();
  return info.Env().Undefined();
}
static Napi::Value Fill_(const Napi::CallbackInfo& info) {
  Get(info[0]).fill_(ToScalar(info[1]));
  return info.Env().Undefined();
}
static Napi::Value Copy_(const Napi::CallbackInfo& info) {
  Get(info[0]).copy_(Get(info[1]));
  return info.Env().Undefined();
}
static Napi::Value Clamp_(const Napi::CallbackInfo& info) {
  auto lo = NumOpt(info[1]);
  auto hi = NumOpt(info[2]);
  c10::optional<at::Scalar> l, h;
  if (lo) l = *lo;
  if (hi) h = *hi;
  Get(info[0]).clamp_(l, h);
  return info.Env().Undefined();
}
static Napi::Value Relu_(const Napi::CallbackInfo& info) {
  Get(info[0]).relu_();
  return info.Env().Undefined();
}
static Napi::Value Sqrt_(const Napi::CallbackInfo& info) {
  Get(info[0]).sqrt_();
  return info.Env().Undefined();
}

void InitMath(Napi::Env env, Napi::Object exports) {
  exports.Set("unaryNames", Names(env, kUnary));
  exports.Set("binaryNames", Names(env, kBinary));
  exports.Set("scalarNames", Names(env, kScalar));
  Register(env, exports, "unary", UnaryOp);
  Register(env, exports, "binary", BinaryOp);
  Register(env, exports, "scalar", ScalarOp);
  Register(env, exports, "reduce", Reduce);
  Register(env, exports, "addScaled", AddScaled);
  Register(env, exports, "clamp", Clamp);
  Register(env, exports, "where", Where);
  Register(env, exports, "matmul", Matmul);
  Register(env, exports, "softmax", Softmax);
  Register(env, exports, "logSoftmax", LogSoftmax);
  Register(env, exports, "bincount", Bincount);
  Register(env, exports, "topk", Topk);
  Register(env, exports, "add_", Add_);
  Register(env, exports, "mul_", Mul_);
  Register(env, exports, "div_", Div_);
  Register(env, exports, "addcmul_", Addcmul_);
  Register(env, exports, "addcdiv_", Addcdiv_);
  Register(env, exports, "lerp_", Lerp_);
  Register(env, exports, "zero_", Zero_);
  Register(env, exports, "fill_", Fill_);
  Register(env, exports, "copy_", Copy_);
  Register(env, exports, "clamp_", Clamp_);
  Register(env, exports, "sqrt_", Sqrt_);
  Register(env, exports, "relu_", Relu_);
}

}  // namespace panseg
