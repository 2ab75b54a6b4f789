// Tensor creation, copying data in and out, metadata, dtype/device moves, random fills.
#include "common.h"

#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace panseg {

// fromBuffer(typedArray, shape, dtype, device): copies the bytes into a new tensor.
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  auto arr = info[0].As<Napi::TypedArray>();
  auto shape = Ints(info[1]);
  auto dtype = Dtype(info[2]);
  auto buf = arr.ArrayBuffer();
  auto* data = static_cast<uint8_t*>(buf.Data()) + arr.ByteOffset();
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  if (static_cast<size_t>(t.nbytes()) != arr.ByteLength())
    throw std::invalid_argument("data holds " + std::to_string(arr.ByteLength()) + " bytes but the shape needs " +
                                std::to_string(t.nbytes()));
  if (t.nbytes()) std::memcpy(t.data_ptr(), data, t.nbytes());
  auto dev = Dev(info[3]);
  return Wrap(info.Env(), dev.is_cpu() ? t : t.to(dev));
}

// toBuffer(t): a copy of the elements in row-major order as an ArrayBuffer. The memory comes from
// malloc and is handed to V8 as an external buffer: V8's own ArrayBuffer::New aborts the process when
// an allocation fails, while a failed malloc here is an ordinary, catchable error.
static Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  auto t = Get(info[0]).detach().to(at::kCPU).contiguous();
  const size_t n = t.nbytes();
  if (n == 0) return Napi::ArrayBuffer::New(info.Env(), 0);
  // JS checks sizes first (Number.MAX_SAFE_INTEGER is the most any ArrayBuffer may hold).
  if (n > static_cast<size_t>(9007199254740991ULL)) throw std::length_error("a tensor of " + std::to_string(n) + " bytes is too large for an ArrayBuffer");
  void* data = std::malloc(n);
  if (data == nullptr) throw std::runtime_error("cannot allocate " + std::to_string(n) + " bytes for the copy (out of memory)");
  std::memcpy(data, t.data_ptr(), n);
  try {
    return Napi::ArrayBuffer::New(info.Env(), data, n, [](Napi::Env, void* p) { std::free(p); });
  } catch (...) {
    std::free(data);
    throw;
  }
}

// meta(t): [dtypeCode, device, requiresGrad, ...shape]
static Napi::Value Meta(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  auto env = info.Env();
  auto arr = Napi::Array::New(env, 3 + t.dim());
  arr.Set(0u, DtypeCode(t.scalar_type()));
  arr.Set(1u, t.device().str());
  arr.Set(2u, t.requires_grad());
  for (int64_t i = 0; i < t.dim(); i++) arr.Set(3 + i, Napi::Number::New(env, static_cast<double>(t.size(i))));
  return arr;
}

static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  if (t.numel() != 1) throw std::invalid_argument("a tensor with " + std::to_string(t.numel()) + " elements cannot be converted to a number");
  return Napi::Number::New(info.Env(), t.item().toDouble());
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Release(info[0]);
  return info.Env().Undefined();
}

static Napi::Value Zeros(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::zeros(Ints(info[0]), Opts(info[1], info[2]))); }
static Napi::Value Ones(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::ones(Ints(info[0]), Opts(info[1], info[2]))); }
static Napi::Value Empty(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::empty(Ints(info[0]), Opts(info[1], info[2]))); }
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::full(Ints(info[0]), Num(info[1]), Opts(info[2], info[3])));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::arange(Num(info[0]), Num(info[1]), Num(info[2]), Opts(info[3], info[4])));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::rand(Ints(info[0]), Opts(info[1], info[2]))); }
static Napi::Value Randn(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::randn(Ints(info[0]), Opts(info[1], info[2]))); }
static Napi::Value Randint(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::randint(Int(info[0]), Int(info[1]), Ints(info[2]), Opts(info[3], info[4])));
}
static Napi::Value Randperm(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), at::randperm(Int(info[0]), at::TensorOptions().dtype(at::kLong)));
}

// to(t, dtypeCode | null, device | null, copy)
static Napi::Value To(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  auto dtype = info[1].IsNull() ? t.scalar_type() : Dtype(info[1]);
  auto dev = info[2].IsNull() ? t.device() : Dev(info[2]);
  return Wrap(info.Env(), t.to(dev, dtype, /*non_blocking=*/false, /*copy=*/Bool(info[3])));
}

static Napi::Value Clone(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).clone()); }

// In-place random fills used by the initializers (same generator calls as torch.nn.init).
static Napi::Value Uniform_(const Napi::CallbackInfo& info) {
  c10::NoGradGuard g;
  Get(info[0]).uniform_(Num(info[1]), Num(info[2]));
  return info.Env().Undefined();
}
static Napi::Value Normal_(const Napi::CallbackInfo& info) {
  c10::NoGradGuard g;
  Get(info[0]).normal_(Num(info[1]), Num(info[2]));
  return info.Env().Undefined();
}
static Napi::Value Bernoulli(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::bernoulli(Get(info[0]))); }

void InitCreate(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "fromBuffer", FromBuffer);
  Register(env, exports, "toBuffer", ToBuffer);
  Register(env, exports, "meta", Meta);
  Register(env, exports, "item", Item);
  Register(env, exports, "dispose", Dispose);
  Register(env, exports, "zeros", Zeros);
  Register(env, exports, "ones", Ones);
  Register(env, exports, "empty", Empty);
  Register(env, exports, "full", Full);
  Register(env, exports, "arange", Arange);
  Register(env, exports, "rand", Rand);
  Register(env, exports, "randn", Randn);
  Register(env, exports, "randint", Randint);
  Register(env, exports, "randperm", Randperm);
  Register(env, exports, "to", To);
  Register(env, exports, "clone", Clone);
  Register(env, exports, "uniform_", Uniform_);
  Register(env, exports, "normal_", Normal_);
  Register(env, exports, "bernoulli", Bernoulli);
}

}  // namespace panseg
