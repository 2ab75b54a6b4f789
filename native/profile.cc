// Op-level profile of a stretch of work (`npm run bench -- profile`): libtorch's own profiler
// records every aten op, and this file folds the nested ranges into per-op self times.
#include "common.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>

namespace panseg {
namespace prof = torch::autograd::profiler;

static bool g_profiling = false;

// profileStart(): records ops (with input shapes and the profiler's FLOP counts) on this thread
// and the threads it launches work on.
static Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  if (g_profiling) throw std::runtime_error("a profile is already running; call profileStop() first");
  torch::profiler::impl::ProfilerConfig cfg(torch::profiler::impl::ProfilerState::CPU, /*report_input_shapes=*/true,
                                            /*profile_memory=*/false, /*with_stack=*/false, /*with_flops=*/true);
  prof::enableProfilerLegacy(cfg);
  g_profiling = true;
  return info.Env().Undefined();
}

struct Row {
  int64_t calls = 0;
  double selfUs = 0, totalUs = 0, flops = 0, elements = 0;
};

static double Numel(const std::vector<int64_t>& s) {
  double n = 1;
  for (auto d : s) n *= static_cast<double>(d);
  return s.empty() ? 0 : n;
}

// The profiler counts forward FLOPs (aten::conv2d, mm, ...) but not convolution_backward's:
// grad input and grad weight each cost the forward's 2 * out.numel() * (C/g)*kh*kw.
static double BackwardConvFlops(const std::vector<std::vector<int64_t>>& s) {
  if (s.size() < 3 || s[2].size() != 4) return 0;
  return 4 * Numel(s[0]) * static_cast<double>(s[2][1] * s[2][2] * s[2][3]);
}

// Winograd's forward (winograd.cc) records its input and weight: counted as the direct convolution's FLOPs
// (the same work, which Winograd does with fewer multiplications), with an output as large as the input.
static double WinogradForwardFlops(const std::vector<std::vector<int64_t>>& s) {
  if (s.size() < 2 || s[0].size() != 4 || s[1].size() != 4) return 0;
  return 2 * Numel(s[0]) / static_cast<double>(s[0][1]) * static_cast<double>(s[1][0] * s[1][1] * s[1][2] * s[1][3]);
}

// profileStop(): [{name, calls, selfUs, totalUs, flops, elements}] where `elements` counts each
// input read once and an output as large as the largest input written once (a memory-traffic floor).
static Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  if (!g_profiling) throw std::runtime_error("no profile is running; call profileStart() first");
  g_profiling = false;
  auto lists = prof::disableProfilerLegacy();
  std::map<std::string, Row> rows;
  struct Frame {
    const prof::LegacyEvent* ev;
    double childUs;
  };
  for (auto& list : lists) {
    std::vector<Frame> stack;
    for (auto& ev : list) {
      if (ev.kind() == prof::EventKind::PushRange) {
        stack.push_back({&ev, 0});
      } else if (ev.kind() == prof::EventKind::PopRange) {
        // Pops match their push by handle; ranges left open by async work are skipped.
        size_t i = stack.size();
        while (i > 0 && stack[i - 1].ev->handle() != ev.handle()) i--;
        if (i == 0) continue;
        Frame f = stack[i - 1];
        stack.resize(i - 1);
        double total = f.ev->cpuElapsedUs(ev);
        if (!stack.empty()) stack.back().childUs += total;
        std::string name = f.ev->name();
        auto& r = rows[name];
        // An op re-dispatched into itself (autocast's aten::conv2d calls aten::conv2d) is one call.
        if (!stack.empty() && name == stack.back().ev->name()) {
          r.selfUs += total - f.childUs;
          continue;
        }
        r.calls++;
        r.totalUs += total;
        r.selfUs += total - f.childUs;
        auto shapes = f.ev->shapes();
        r.flops += name == "aten::convolution_backward" || name == "panseg::winograd_conv2d_backward" ? BackwardConvFlops(shapes)
                   : name == "panseg::winograd_conv2d"                                                 ? WinogradForwardFlops(shapes)
                                                          : static_cast<double>(const_cast<prof::LegacyEvent*>(f.ev)->flops());
        double largest = 0;
        for (auto& s : shapes) {
          r.elements += Numel(s);
          largest = std::max(largest, Numel(s));
        }
        r.elements += largest;  // the output, taken as large as the largest input
      }
    }
  }
  auto env = info.Env();
  auto out = Napi::Array::New(env, rows.size());
  uint32_t k = 0;
  for (auto& [key, r] : rows) {
    auto o = Napi::Object::New(env);
    o.Set("name", key);
    o.Set("calls", static_cast<double>(r.calls));
    o.Set("selfUs", r.selfUs);
    o.Set("totalUs", r.totalUs);
    o.Set("flops", r.flops);
    o.Set("elements", r.elements);
    out.Set(k++, o);
  }
  return out;
}

// tinyOpFloor(n) -> microseconds per at::add of two 1-element tensors (result freed), called n times
// from C++: libtorch's own cost of a tiny op, the floor under any binding's dispatch (engine bench).
static Napi::Value TinyOpFloor(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info[0]);
  if (n < 1 || n > 100000000) throw std::invalid_argument("n must be 1 to 1e8");
  const auto a = at::ones({1}), b = at::ones({1});
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < n; i++) at::add(a, b);
  const std::chrono::duration<double, std::micro> us = std::chrono::steady_clock::now() - t0;
  return Napi::Number::New(info.Env(), us.count() / static_cast<double>(n));
}

void InitProfile(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "profileStart", ProfileStart);
  Register(env, exports, "profileStop", ProfileStop);
  Register(env, exports, "tinyOpFloor", TinyOpFloor);
}

}  // namespace panseg
