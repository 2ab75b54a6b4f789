// A caching CPU allocator (opt-in, like PyTorch's CUDA caching allocator): freed blocks of 64 KiB
// and more are kept by exact size and handed out again. Repeated same-size work (inference on
// same-size images, training steps) then reuses its buffers instead of getting fresh pages from
// the kernel: glibc returns large blocks to the OS on free, and every reuse page-faults them in
// again. The cache is capped; blocks beyond the cap are freed at once.
#include "common.h"

#include <c10/core/CPUAllocator.h>

#include <cstdlib>
#include <cstring>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <mutex>
#include <unordered_map>

namespace panseg {

namespace {

constexpr size_t kAlign = 64;             // c10's CPU alignment
constexpr size_t kMinCached = 64 << 10;   // smaller blocks: malloc's own bins do well

struct CachingCpuAllocator final : at::Allocator {
  mutable std::mutex mu;
  mutable std::unordered_map<void*, size_t> live;                  // cacheable blocks in use
  mutable std::unordered_map<size_t, std::vector<void*>> cache;   // free blocks by size
  mutable size_t cachedBytes = 0;
  mutable uint64_t hits = 0, misses = 0;
  size_t limit = 0;

  static void* Raw(size_t n) {
    void* p = nullptr;
    TORCH_CHECK(posix_memalign(&p, kAlign, n) == 0 && p, "can't allocate memory: you tried to allocate ", n, " bytes (",
                static_cast<double>(n) / (1 << 30), " GiB)");
    return p;
  }

  // libtorch 1.13 declares allocate() const; 2.x (2.3 on) non-const. Defining both overrides whichever exists.
  at::DataPtr allocate(size_t n) { return static_cast<const CachingCpuAllocator*>(this)->allocate(n); }
  at::DataPtr allocate(size_t n) const {
    if (n == 0) return {nullptr, nullptr, &Delete, at::Device(at::kCPU)};
    void* p = nullptr;
    if (n >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu);
      auto it = cache.find(n);
      if (it != cache.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cachedBytes -= n;
        hits++;
      } else {
        misses++;
      }
    }
    if (!p) p = Raw(n);
    if (n >= kMinCached) {
      std::lock_guard<std::mutex> lock(mu);
      live[p] = n;
    }
    return {p, p, &Delete, at::Device(at::kCPU)};
  }

  // Kept for libtorch 2.x, where Allocator declares it (pure virtual); unused by 1.13.
  void copy_data(void* dest, const void* src, std::size_t count) const { std::memcpy(dest, src, count); }

  at::DeleterFnPtr raw_deleter() const override { return &Delete; }

  void Release(void* p) const {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      auto it = live.find(p);
      if (it != live.end()) {
        size_t n = it->second;
        live.erase(it);
        if (cachedBytes + n <= limit) {
          cache[n].push_back(p);
          cachedBytes += n;
          return;
        }
      }
    }
    std::free(p);
  }

  void Empty() const {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [n, blocks] : cache)
      for (void* p : blocks) std::free(p);
    cache.clear();
    cachedBytes = 0;
  }

  static void Delete(void* p);
};

// Installed once and never destroyed: tensors allocated by it may outlive any scope.
CachingCpuAllocator* g_alloc = nullptr;
std::once_flag g_install;

void CachingCpuAllocator::Delete(void* p) { g_alloc->Release(p); }

CachingCpuAllocator& Installed() {
  std::call_once(g_install, [] {
    g_alloc = new CachingCpuAllocator();
    c10::SetCPUAllocator(g_alloc, /*priority=*/100);
  });
  return *g_alloc;
}

}  // namespace

// cpuCacheSetLimit(bytes): installs the caching allocator (first call) and sets the cap; a cap
// below what is cached empties the cache (0: frees are immediate again).
static Napi::Value CpuCacheSetLimit(const Napi::CallbackInfo& info) {
  auto& a = Installed();
  double bytes = Num(info[0]);
  if (!(bytes >= 0)) throw std::invalid_argument("the cache limit must be >= 0 bytes");
  bool over;
  {
    std::lock_guard<std::mutex> lock(a.mu);
    a.limit = static_cast<size_t>(bytes);
    over = a.cachedBytes > a.limit;
  }
  if (over) a.Empty();
  return info.Env().Undefined();
}
static Napi::Value CpuCacheEmpty(const Napi::CallbackInfo& info) {
  if (g_alloc) g_alloc->Empty();
#ifdef __GLIBC__
  malloc_trim(0);  // glibc keeps freed blocks mapped; hand them back to the OS
#endif
  return info.Env().Undefined();
}
// cpuCacheStats() -> { enabled, limit, cachedBytes, hits, misses }
static Napi::Value CpuCacheStats(const Napi::CallbackInfo& info) {
  auto o = Napi::Object::New(info.Env());
  o.Set("enabled", g_alloc != nullptr);
  if (!g_alloc) {
    for (auto k : {"limit", "cachedBytes", "hits", "misses"}) o.Set(k, 0);
    return o;
  }
  std::lock_guard<std::mutex> lock(g_alloc->mu);
  o.Set("limit", static_cast<double>(g_alloc->limit));
  o.Set("cachedBytes", static_cast<double>(g_alloc->cachedBytes));
  o.Set("hits", static_cast<double>(g_alloc->hits));
  o.Set("misses", static_cast<double>(g_alloc->misses));
  return o;
}

void InitAllocator(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "cpuCacheSetLimit", CpuCacheSetLimit);
  Register(env, exports, "cpuCacheEmpty", CpuCacheEmpty);
  Register(env, exports, "cpuCacheStats", CpuCacheStats);
}

}  // namespace panseg
