// Autograd, grad/inference modes, autocast, seeding, threads and build information.
#include "common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <memory>
#include <mutex>

namespace panseg {

// backward(t, grad | null, retainGraph)
static Napi::Value Backward(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  auto g = GetOpt(info[1]);
  t.backward(g ? *g : at::Tensor(), Bool(info[2]));
  return info.Env().Undefined();
}
static Napi::Value Grad(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  // A non-leaf keeps no grad unless retain_grad() was called; answer null without libtorch's
  // stderr warning (it prints through glog, outside JS).
  if (!t.is_leaf() && !t.retains_grad()) return info.Env().Null();
  auto g = t.grad();
  return g.defined() ? Wrap(info.Env(), g) : info.Env().Null();
}
// setGrad(t, g | null): null clears it, as optimizer.zero_grad(set_to_none=True).
static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  auto g = GetOpt(info[1]);
  Get(info[0]).mutable_grad() = g ? *g : at::Tensor();
  return info.Env().Undefined();
}
static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Get(info[0]).requires_grad_(Bool(info[1]));
  return info.Env().Undefined();
}
static Napi::Value IsLeaf(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), Get(info[0]).is_leaf()); }
static Napi::Value RetainGrad(const Napi::CallbackInfo& info) {
  Get(info[0]).retain_grad();
  return info.Env().Undefined();
}

static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(Bool(info[0]));
  return Napi::Boolean::New(info.Env(), prev);
}
static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled()); }

// Inference mode is an RAII guard in C++; JS scopes nest strictly, so a stack of guards works.
static std::vector<std::unique_ptr<c10::InferenceMode>> g_inference;
static Napi::Value InferenceEnter(const Napi::CallbackInfo& info) {
  g_inference.push_back(std::make_unique<c10::InferenceMode>(true));
  return info.Env().Undefined();
}
static Napi::Value InferenceExit(const Napi::CallbackInfo& info) {
  if (!g_inference.empty()) g_inference.pop_back();
  return info.Env().Undefined();
}

// setAutocast(deviceType, enabled, dtypeCode) -> [previous enabled, previous dtypeCode]. The dtype
// is set first: an unsupported one (fp16 on a CPU in libtorch 1.13) throws before anything changed.
static Napi::Value SetAutocast(const Napi::CallbackInfo& info) {
  auto dev = info[0].As<Napi::String>().Utf8Value();
  bool on = Bool(info[1]);
  auto dtype = Dtype(info[2]);
  bool prev;
  at::ScalarType prevDtype;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  auto type = dev == "cuda" ? at::kCUDA : at::kCPU;
  prev = at::autocast::is_autocast_enabled(type);
  prevDtype = at::autocast::get_autocast_dtype(type);
  at::autocast::set_autocast_dtype(type, dtype);
  at::autocast::set_autocast_enabled(type, on);
#else
  if (dev == "cuda") {
    prev = at::autocast::is_enabled();
    prevDtype = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(on);
  } else {
    prev = at::autocast::is_cpu_enabled();
    prevDtype = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(on);
  }
#endif
  // Leaving the outermost autocast region drops cached casts of the weights, as torch.autocast does.
  if (!on) at::autocast::clear_cache();
  auto out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, prev);
  out.Set(1u, DtypeCode(prevDtype));
  return out;
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  at::manual_seed(static_cast<uint64_t>(Int(info[0])));
  return info.Env().Undefined();
}
// A default generator's state as a uint8 tensor (torch.get_rng_state / set_rng_state, and
// torch.cuda.get_rng_state(N) when the device argument is a CUDA index N >= 0; a CPU build throws then).
static at::Generator DefaultGenerator(const Napi::CallbackInfo& info, size_t arg) {
  const int64_t cuda = info.Length() > arg && info[arg].IsNumber() ? Int(info[arg]) : -1;
  if (cuda < 0) return at::detail::getDefaultCPUGenerator();
  return at::globalContext().defaultGenerator(at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(cuda)));
}
static Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  auto gen = DefaultGenerator(info, 0);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return Wrap(info.Env(), gen.get_state());
}
static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  auto gen = DefaultGenerator(info, 1);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(Get(info[0]));
  return info.Env().Undefined();
}
static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  at::set_num_threads(static_cast<int>(Int(info[0])));
  return info.Env().Undefined();
}
static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
static Napi::Value LiveTensors(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(g_live.load())); }

static Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torchVersion", TORCH_VERSION);
  o.Set("parallelInfo", at::get_parallel_info());
  o.Set("mkldnn", at::hasMKLDNN());
  o.Set("cuda", at::hasCUDA());
  // torch/cuda.h answers through libtorch's CUDA hooks: no CUDA headers needed at build time.
  o.Set("cudaDevices", at::hasCUDA() ? static_cast<double>(torch::cuda::device_count()) : 0.0);
  return o;
}

// Waits for all queued GPU work (CUDA kernels run asynchronously): timings and host reads need it.
static Napi::Value CudaSynchronize(const Napi::CallbackInfo& info) {
  if (at::hasCUDA()) torch::cuda::synchronize(info.Length() > 0 ? Int(info[0]) : -1);
  return info.Env().Undefined();
}

// The fused training kernels (cross-entropy.cc, batch-norm-relu.cc): x86-64 with AVX-512 F, BW and VL.
static bool FusedKernelsAvailable() {
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return ok;
#else
  return false;
#endif
}
static bool g_fused = true;
bool FusedKernels() { return g_fused && FusedKernelsAvailable(); }
// setFusedKernels(on) -> whether this build and CPU have them. Off, ATen's kernels run, as PyTorch's.
static Napi::Value SetFusedKernels(const Napi::CallbackInfo& info) {
  g_fused = Bool(info[0]);
  return Napi::Boolean::New(info.Env(), FusedKernelsAvailable());
}
static Napi::Value FusedKernelsSetting(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), g_fused); }

void InitRuntime(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "setFusedKernels", SetFusedKernels);
  Register(env, exports, "fusedKernels", FusedKernelsSetting);
  Register(env, exports, "backward", Backward);
  Register(env, exports, "grad", Grad);
  Register(env, exports, "setGrad", SetGrad);
  Register(env, exports, "setRequiresGrad", SetRequiresGrad);
  Register(env, exports, "isLeaf", IsLeaf);
  Register(env, exports, "retainGrad", RetainGrad);
  Register(env, exports, "setGradEnabled", SetGradEnabled);
  Register(env, exports, "isGradEnabled", IsGradEnabled);
  Register(env, exports, "inferenceEnter", InferenceEnter);
  Register(env, exports, "inferenceExit", InferenceExit);
  Register(env, exports, "setAutocast", SetAutocast);
  Register(env, exports, "manualSeed", ManualSeed);
  Register(env, exports, "setNumThreads", SetNumThreads);
  Register(env, exports, "getNumThreads", GetNumThreads);
  Register(env, exports, "liveTensors", LiveTensors);
  Register(env, exports, "getRngState", GetRngState);
  Register(env, exports, "setRngState", SetRngState);
  Register(env, exports, "buildInfo", BuildInfo);
  Register(env, exports, "cudaSynchronize", CudaSynchronize);
}

}  // namespace panseg
