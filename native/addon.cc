// Module entry and the shared helpers declared in common.h.
#include "common.h"

#include <deque>
#include <unordered_map>

namespace panseg {

std::atomic<int64_t> g_live{0};

// Tensors live in a per-thread table and JS holds their slot numbers. A small integer crosses
// N-API without allocation, where an External with a finalizer cost ~1 us per tensor (a weak
// reference for the GC to track). Each JS thread (main, workers) loads the addon into its own
// environment and gets its own table; a deque keeps references stable while it grows.
namespace {
struct Slots {
  std::deque<at::Tensor> t;
  std::vector<int32_t> free;
};
thread_local Slots* tls = nullptr;

Slots& Table() {
  if (!tls) throw std::runtime_error("panseg: no tensor table on this thread");
  return *tls;
}

int32_t Slot(const Napi::Value& v) {
  int32_t i;
  if (napi_get_value_int32(v.Env(), v, &i) != napi_ok) throw std::invalid_argument("expected a tensor handle");
  return i;
}
}  // namespace

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  auto& s = Table();
  int32_t i;
  if (s.free.empty()) {
    if (s.t.size() >= INT32_MAX) throw std::runtime_error("too many live tensors");
    i = static_cast<int32_t>(s.t.size());
    s.t.push_back(std::move(t));
  } else {
    i = s.free.back();
    s.free.pop_back();
    s.t[i] = std::move(t);
  }
  g_live++;
  return Napi::Number::New(env, i);
}

at::Tensor& Get(const Napi::Value& v) {
  auto& s = Table();
  int32_t i = Slot(v);
  if (i < 0 || static_cast<size_t>(i) >= s.t.size() || !s.t[i].defined()) throw std::invalid_argument("tensor was disposed");
  return s.t[i];
}

void Release(const Napi::Value& v) {
  auto& s = Table();
  int32_t i = Slot(v);
  if (i < 0 || static_cast<size_t>(i) >= s.t.size() || !s.t[i].defined()) return;
  s.t[i].reset();
  s.free.push_back(i);
  g_live--;
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
  // The environment's tensors are freed when it ends (worker exit or process exit), on its thread.
  if (!tls) {
    tls = new Slots();
    Slots* mine = tls;
    env.AddCleanupHook([mine] {
      for (auto& t : mine->t)
        if (t.defined()) g_live--;
      if (tls == mine) tls = nullptr;
      delete mine;
    });
  }
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
  InitWinograd(env, exports);
  InitCudaGraph(env, exports);
  InitCapturable(env, exports);
  return exports;
}

}  // namespace panseg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return panseg::Init(env, exports); }

NODE_API_MODULE(panseg_addon, InitAddon)
