// Module entry and the shared helpers declared in common.h.
#include "common.h"

#include <unordered_map>

namespace panseg {

std::atomic<int64_t> g_live{0};

static void Finalize(Napi::Env, Holder* h) {
  if (h->t.defined()) g_live--;
  delete h;
}

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto* h = new Holder{std::move(t)};
  g_live++;
  return Napi::External<Holder>::New(env, h, Finalize);
}

at::Tensor& Get(const Napi::Value& v) {
  if (!v.IsExternal()) throw std::invalid_argument("expected a tensor handle");
  auto* h = v.As<Napi::External<Holder>>().Data();
  if (!h->t.defined()) throw std::invalid_argument("tensor was disposed");
  return h->t;
}

c10::optional<at::Tensor> GetOpt(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
  return Get(v);
}

std::vector<at::Tensor> GetList(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(Get(arr.Get(i)));
  return out;
}

Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts) {
  auto arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(i, Wrap(env, ts[i]));
  return arr;
}

std::vector<int64_t> Ints(const Napi::Value& v) {
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().Int64Value();
  return out;
}
int64_t Int(const Napi::Value& v) { return v.As<Napi::Number>().Int64Value(); }
double Num(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
bool Bool(const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); }
c10::optional<double> NumOpt(const Napi::Value& v) {
  if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
  return Num(v);
}

// Codes shared with src/engine/dtype.ts.
static const at::ScalarType kDtypes[] = {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16,
                                         at::kLong,  at::kInt,    at::kByte, at::kBool};
at::ScalarType Dtype(const Napi::Value& v) {
  int64_t c = Int(v);
  if (c < 0 || c >= 8) throw std::invalid_argument("unknown dtype code");
  return kDtypes[c];
}
int DtypeCode(at::ScalarType t) {
  for (int i = 0; i < 8; i++)
    if (kDtypes[i] == t) return i;
  return -1;
}
at::Device Dev(const Napi::Value& v) { return at::Device(v.As<Napi::String>().Utf8Value()); }
at::TensorOptions Opts(const Napi::Value& dtype, const Napi::Value& device) {
  return at::TensorOptions().dtype(Dtype(dtype)).device(Dev(device));
}

// A table of (name, fn) looked up through the callback's data pointer, so one guard serves all ops.
struct OpEntry {
  std::string name;
  Fn fn;
};

static Napi::Value Guard(const Napi::CallbackInfo& info) {
  auto* op = static_cast<OpEntry*>(info.Data());
  try {
    return op->fn(info);
  } catch (const Napi::Error& e) {
    throw Napi::Error::New(info.Env(), op->name + ": " + e.Message());
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), op->name + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), op->name + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), op->name + ": unknown native error");
  }
}

void Register(Napi::Env env, Napi::Object exports, const char* name, Fn fn) {
  auto* entry = new OpEntry{name, fn};  // lives as long as the module
  exports.Set(name, Napi::Function::New(env, Guard, name, entry));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitCreate(env, exports);
  InitMath(env, exports);
  InitNN(env, exports);
  InitShape(env, exports);
  InitRuntime(env, exports);
  InitDistributed(env, exports);
  InitOptim(env, exports);
  InitAllocator(env, exports);
  InitMkldnn(env, exports);
  InitProfile(env, exports);
  return exports;
}

}  // namespace panseg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return panseg::Init(env, exports); }

NODE_API_MODULE(panseg_addon, InitAddon)
