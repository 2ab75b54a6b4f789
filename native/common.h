// Shared helpers for the panseg addon: tensor handles, argument readers and the
// exception guard. Op files include only this header.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <atomic>

#include <string>
#include <vector>

namespace panseg {

// A JS handle is a small integer: a slot in this thread's table of tensors (see addon.cc).
// dispose() empties the slot; JS frees tensors it never disposed through a FinalizationRegistry.
extern std::atomic<int64_t> g_live;

Napi::Value Wrap(Napi::Env env, at::Tensor t);
// The reference stays valid until the slot is released, even across later Wrap calls.
at::Tensor& Get(const Napi::Value& v);
// Empties the slot of handle `v` (a no-op for an empty one).
void Release(const Napi::Value& v);
c10::optional<at::Tensor> GetOpt(const Napi::Value& v);
std::vector<at::Tensor> GetList(const Napi::Value& v);
Napi::Value WrapList(Napi::Env env, const std::vector<at::Tensor>& ts);

std::vector<int64_t> Ints(const Napi::Value& v);
int64_t Int(const Napi::Value& v);
double Num(const Napi::Value& v);
bool Bool(const Napi::Value& v);
c10::optional<double> NumOpt(const Napi::Value& v);
at::ScalarType Dtype(const Napi::Value& v);
int DtypeCode(at::ScalarType t);
at::Device Dev(const Napi::Value& v);
at::TensorOptions Opts(const Napi::Value& dtype, const Napi::Value& device);

// Whether oneDNN is called through ideep (the system library libtorch loads, at the headers' version).
bool IdeepUsable();
// A float32 3x3 stride-1 training convolution on oneDNN's Winograd kernels, or nullopt where it does not
// apply (winograd.cc); the caller then runs at::conv2d.
c10::optional<at::Tensor> WinogradConv2d(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b,
                                         at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// Softmax cross-entropy over contiguous float32 rows [M, C] in one fused pass each way, or nullopt where it
// does not apply (cross-entropy.cc); the caller then runs at::cross_entropy_loss.
c10::optional<at::Tensor> FusedCrossEntropy(const at::Tensor& rows, const at::Tensor& target, const c10::optional<at::Tensor>& weight,
                                            int64_t reduction, int64_t ignore, double smoothing);

// Training-mode BatchNorm then ReLU, fused, over channels-last float32 or bfloat16 activations, or nullopt
// where it does not apply (batch-norm-relu.cc); the caller then runs at::batch_norm and relu_.
c10::optional<at::Tensor> FusedBatchNormRelu(const at::Tensor& x, const c10::optional<at::Tensor>& weight, const c10::optional<at::Tensor>& bias,
                                             const c10::optional<at::Tensor>& runMean, const c10::optional<at::Tensor>& runVar, double momentum,
                                             double eps);
// Whether the fused kernels run: setFusedKernels (runtime.cc) and a CPU with AVX-512 F, BW and VL.
bool FusedKernels();

using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
// Registers op `name`: every call is wrapped so that any C++ exception becomes a JS Error
// whose message starts with the op's name.
void Register(Napi::Env env, Napi::Object exports, const char* name, Fn fn);

void InitCreate(Napi::Env env, Napi::Object exports);
void InitMath(Napi::Env env, Napi::Object exports);
void InitNN(Napi::Env env, Napi::Object exports);
void InitShape(Napi::Env env, Napi::Object exports);
void InitRuntime(Napi::Env env, Napi::Object exports);
void InitDistributed(Napi::Env env, Napi::Object exports);
void InitOptim(Napi::Env env, Napi::Object exports);
void InitAllocator(Napi::Env env, Napi::Object exports);
void InitMkldnn(Napi::Env env, Napi::Object exports);
void InitProfile(Napi::Env env, Napi::Object exports);
void InitWinograd(Napi::Env env, Napi::Object exports);
void InitCudaGraph(Napi::Env env, Napi::Object exports);
void InitCapturable(Napi::Env env, Napi::Object exports);

}  // namespace panseg
