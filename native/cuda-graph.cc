// CUDA graphs: capture a stretch of GPU work once, replay it with one launch (at::cuda::CUDAGraph,
// as torch.cuda.graph). Graphs live in a table keyed by number, like tensors in addon.cc. Capture and
// warm-up run on a side stream from libtorch's pool (a capture may not run on the default stream);
// the caller's stream is restored afterwards, also on error. A CPU build has the same functions,
// which throw one line saying a CUDA libtorch is needed.
#include "common.h"

#ifdef PANSEG_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <memory>
#include <unordered_map>
#include <utility>
#endif

namespace panseg {

#ifdef PANSEG_CUDA
namespace {
// One side-stream scope: the stream that was current before it, and the side stream now current.
struct StreamScope {
  c10::cuda::CUDAStream prev;
  c10::cuda::CUDAStream side;
};
std::vector<StreamScope> g_streams;  // nested scopes (JS calls are strictly nested)

struct Graph {
  std::unique_ptr<at::cuda::CUDAGraph> g = std::make_unique<at::cuda::CUDAGraph>();
  bool captured = false;
};
std::unordered_map<int64_t, Graph> g_graphs;
int64_t g_nextGraph = 1;
int64_t g_capturing = 0;  // id of the graph being captured, 0 when none

Graph& Find(const Napi::Value& v) {
  auto it = g_graphs.find(Int(v));
  if (it == g_graphs.end()) throw std::invalid_argument("CUDA graph was freed");
  return it->second;
}

// Makes a pool stream of `device` current; it first waits for the work already queued on the
// current stream (so it sees the inputs written there).
void PushSideStream(c10::DeviceIndex device) {
  auto prev = c10::cuda::getCurrentCUDAStream(device);
  auto side = c10::cuda::getStreamFromPool(false, device);
  at::cuda::CUDAEvent ready;
  ready.record(prev);
  ready.block(side);
  c10::cuda::setCurrentCUDAStream(side);
  g_streams.push_back({prev, side});
}

// Restores the stream that was current before the innermost scope; that stream then waits for the
// side stream's work, so what was computed there is visible to the caller's later work.
void PopSideStream() {
  if (g_streams.empty()) return;
  auto s = g_streams.back();
  g_streams.pop_back();
  c10::cuda::setCurrentCUDAStream(s.prev);
  at::cuda::CUDAEvent done;
  done.record(s.side);
  done.block(s.prev);
}
}  // namespace

static Napi::Value GraphNew(const Napi::CallbackInfo& info) {
  int64_t id = g_nextGraph++;
  g_graphs.emplace(id, Graph{});
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

// cudaGraphBegin(id, device, shareWith): starts capturing on a side stream of `device`. shareWith, a
// captured graph's id or 0, shares its memory pool (safe when the graphs replay in capture order).
static Napi::Value GraphBegin(const Napi::CallbackInfo& info) {
  auto& gr = Find(info[0]);
  if (g_capturing) throw std::runtime_error("a capture is already under way; CUDA graph captures do not nest");
  if (gr.captured) throw std::runtime_error("this graph was already captured");
  auto device = static_cast<c10::DeviceIndex>(Int(info[1]));
  int64_t share = Int(info[2]);
  // MempoolId_t moved between namespaces across PyTorch versions: take the type from pool() itself.
  decltype(std::declval<at::cuda::CUDAGraph&>().pool()) pool{0, 0};
  if (share) pool = Find(info[2]).g->pool();
  // As torch.cuda.graph: no earlier work may still be running into the capture.
  C10_CUDA_CHECK(cudaDeviceSynchronize());
  PushSideStream(device);
  try {
    gr.g->capture_begin(pool);
  } catch (...) {
    PopSideStream();
    throw;
  }
  g_capturing = Int(info[0]);
  return info.Env().Undefined();
}

// Ends the capture and instantiates the graph; the caller's stream is current again either way.
static Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  auto& gr = Find(info[0]);
  if (g_capturing != Int(info[0])) throw std::runtime_error("this graph is not being captured");
  g_capturing = 0;
  try {
    gr.g->capture_end();  // must run with the capture stream current
  } catch (...) {
    PopSideStream();
    throw;
  }
  PopSideStream();
  gr.captured = true;
  return info.Env().Undefined();
}

// Abandons a capture after an error in the captured code: ends it (ignoring the invalidated
// capture's error), drops what was recorded, clears the CUDA error and restores the stream.
static Napi::Value GraphAbort(const Napi::CallbackInfo& info) {
  auto& gr = Find(info[0]);
  if (g_capturing != Int(info[0])) return info.Env().Undefined();
  g_capturing = 0;
  try { gr.g->capture_end(); } catch (...) {}
  PopSideStream();
  try { gr.g->reset(); } catch (...) {}
  gr.g = std::make_unique<at::cuda::CUDAGraph>();
  (void)cudaGetLastError();
  return info.Env().Undefined();
}

// Launches the graph on the current stream: later work on that stream sees its results.
static Napi::Value GraphReplay(const Napi::CallbackInfo& info) {
  auto& gr = Find(info[0]);
  if (!gr.captured) throw std::runtime_error("this graph has not been captured");
  if (g_capturing) throw std::runtime_error("cannot replay a graph while another is being captured");
  gr.g->replay();
  return info.Env().Undefined();
}

static Napi::Value GraphFree(const Napi::CallbackInfo& info) {
  auto it = g_graphs.find(Int(info[0]));
  if (it == g_graphs.end()) return info.Env().Undefined();
  if (g_capturing == it->first) throw std::runtime_error("cannot free a graph during its capture");
  g_graphs.erase(it);  // ~CUDAGraph resets it and releases its pool
  return info.Env().Undefined();
}

static Napi::Value SideStreamPush(const Napi::CallbackInfo& info) {
  PushSideStream(static_cast<c10::DeviceIndex>(Int(info[0])));
  return info.Env().Undefined();
}
static Napi::Value SideStreamPop(const Napi::CallbackInfo& info) {
  PopSideStream();
  return info.Env().Undefined();
}
static Napi::Value GraphCapturing(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), g_capturing != 0); }

#else
[[noreturn]] static void NoCuda() {
  throw std::runtime_error(
      "CUDA graphs need a CUDA build of libtorch; set LIBTORCH to a CUDA libtorch (or install a CUDA PyTorch) and run `npm run setup`");
}
static Napi::Value GraphNew(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value GraphBegin(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value GraphEnd(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value GraphAbort(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value GraphReplay(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value GraphFree(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }
static Napi::Value SideStreamPush(const Napi::CallbackInfo&) { NoCuda(); }
static Napi::Value SideStreamPop(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }
static Napi::Value GraphCapturing(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), false); }
#endif

void InitCudaGraph(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "cudaGraphNew", GraphNew);
  Register(env, exports, "cudaGraphBegin", GraphBegin);
  Register(env, exports, "cudaGraphEnd", GraphEnd);
  Register(env, exports, "cudaGraphAbort", GraphAbort);
  Register(env, exports, "cudaGraphReplay", GraphReplay);
  Register(env, exports, "cudaGraphFree", GraphFree);
  Register(env, exports, "cudaSideStreamPush", SideStreamPush);
  Register(env, exports, "cudaSideStreamPop", SideStreamPop);
  Register(env, exports, "cudaGraphCapturing", GraphCapturing);
}

}  // namespace panseg
