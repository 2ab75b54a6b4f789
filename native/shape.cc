// Views, reshapes, joins and memory layout.
#include "common.h"

namespace panseg {

static Napi::Value Reshape(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).reshape(Ints(info[1]))); }
static Napi::Value View(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).view(Ints(info[1]))); }
static Napi::Value Permute(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).permute(Ints(info[1]))); }
static Napi::Value Transpose(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Get(info[0]).transpose(Int(info[1]), Int(info[2])));
}
static Napi::Value Flatten(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).flatten(Int(info[1]), Int(info[2]))); }
static Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  auto& t = Get(info[0]);
  return Wrap(info.Env(), info[1].IsNull() ? t.squeeze() : t.squeeze(Int(info[1])));
}
static Napi::Value Unsqueeze(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).unsqueeze(Int(info[1]))); }
static Napi::Value Expand(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).expand(Ints(info[1]))); }
static Napi::Value Repeat(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).repeat(Ints(info[1]))); }
static Napi::Value Narrow(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Get(info[0]).narrow(Int(info[1]), Int(info[2]), Int(info[3])));
}
// slice(t, dim, start, end, step)
static Napi::Value Slice(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Get(info[0]).slice(Int(info[1]), Int(info[2]), Int(info[3]), Int(info[4])));
}
static Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), Get(info[0]).index_select(Int(info[1]), Get(info[2])));
}
static Napi::Value Gather(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).gather(Int(info[1]), Get(info[2]))); }
static Napi::Value Flip(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).flip(Ints(info[1]))); }
static Napi::Value Cat(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::cat(GetList(info[0]), Int(info[1]))); }
static Napi::Value Stack(const Napi::CallbackInfo& info) { return Wrap(info.Env(), at::stack(GetList(info[0]), Int(info[1]))); }
static Napi::Value Split(const Napi::CallbackInfo& info) {
  return WrapList(info.Env(), Get(info[0]).split_with_sizes(Ints(info[1]), Int(info[2])));
}
static Napi::Value Detach(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).detach()); }

static at::MemoryFormat Format(const Napi::Value& v) {
  return Bool(v) ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
}
// contiguous(t, channelsLast)
static Napi::Value Contiguous(const Napi::CallbackInfo& info) { return Wrap(info.Env(), Get(info[0]).contiguous(Format(info[1]))); }
static Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Get(info[0]).is_contiguous(Format(info[1])));
}
static Napi::Value Strides(const Napi::CallbackInfo& info) {
  auto s = Get(info[0]).strides();
  auto arr = Napi::Array::New(info.Env(), s.size());
  for (size_t i = 0; i < s.size(); i++) arr.Set(i, Napi::Number::New(info.Env(), static_cast<double>(s[i])));
  return arr;
}

void InitShape(Napi::Env env, Napi::Object exports) {
  Register(env, exports, "reshape", Reshape);
  Register(env, exports, "view", View);
  Register(env, exports, "permute", Permute);
  Register(env, exports, "transpose", Transpose);
  Register(env, exports, "flatten", Flatten);
  Register(env, exports, "squeeze", Squeeze);
  Register(env, exports, "unsqueeze", Unsqueeze);
  Register(env, exports, "expand", Expand);
  Register(env, exports, "repeat", Repeat);
  Register(env, exports, "narrow", Narrow);
  Register(env, exports, "slice", Slice);
  Register(env, exports, "indexSelect", IndexSelect);
  Register(env, exports, "gather", Gather);
  Register(env, exports, "flip", Flip);
  Register(env, exports, "cat", Cat);
  Register(env, exports, "stack", Stack);
  Register(env, exports, "split", Split);
  Register(env, exports, "detach", Detach);
  Register(env, exports, "contiguous", Contiguous);
  Register(env, exports, "isContiguous", IsContiguous);
  Register(env, exports, "strides", Strides);
}

}  // namespace panseg
