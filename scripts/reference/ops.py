#!/usr/bin/python3
"""Reference data for the engine's parity tests (tests/engine/*.test.ts).

Usage: /usr/bin/python3 scripts/reference/ops.py <outDir>

Writes one .npy per array and <outDir>/manifest.json:
  {"torch": version, "cases": {name: {"params": {...}, "inputs": {k: file}, "outputs": {k: file},
                                      "grads": {k: file}, "gy": file | null, "dtypes": {k: dtype},
                                      "meta": {...}}}}
Each case runs one op under PyTorch. For differentiable cases, output "y" is backpropagated
with a fixed random upstream gradient "gy" and the gradient of each input named in "grads" saved.
Arrays keep their dtype except bfloat16, which NumPy lacks: it is saved as float32 (exactly),
with "bfloat16" recorded in "dtypes". Case names are "<group>/<variant>"; params are what the
TypeScript side needs to make the same call.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
torch.set_num_threads(2)
gen = torch.Generator().manual_seed(20240601)
CASES = {}
_count = [0]


def rn(*shape, dtype=torch.float32):
    return torch.randn(tuple(shape), generator=gen, dtype=dtype)


def ri(lo, hi, *shape):
    return torch.randint(lo, hi, tuple(shape), generator=gen, dtype=torch.int64)


def save(t):
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    _count[0] += 1
    name = f"{_count[0]:05d}.npy"
    np.save(os.path.join(OUT, name), t.contiguous().numpy())  # not ascontiguousarray: it turns 0-d into 1-d
    return name


def dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def camel(kw):
    """Python keyword names -> the TypeScript option names; tuples -> lists."""
    out = {}
    for k, v in kw.items():
        head, *rest = k.split("_")
        out[head + "".join(r.title() for r in rest)] = list(v) if isinstance(v, tuple) else v
    return out


def case(name, inputs, fn, params=None, grad=(), meta=None):
    """inputs: name -> tensor; fn(**inputs) -> tensor or dict of tensors (output 'y' is backpropagated)."""
    assert name not in CASES, name
    rec = {"params": params or {}, "inputs": {}, "outputs": {}, "grads": {}, "gy": None, "dtypes": {}, "meta": meta or {}}
    for k, v in inputs.items():
        rec["inputs"][k] = save(v)
        rec["dtypes"][k] = dtype_name(v)
    leaves = {k: v.detach().clone().requires_grad_(k in grad) for k, v in inputs.items()}
    out = fn(**leaves)
    if isinstance(out, torch.Tensor):
        out = {"y": out}
    elif isinstance(out, (list, tuple)):
        out = {f"y{i}": o for i, o in enumerate(out)}
    for k, v in out.items():
        rec["outputs"][k] = save(v)
        rec["dtypes"][k] = dtype_name(v)
    if grad:
        y = out["y"]
        gy = rn(*y.shape, dtype=y.dtype)
        y.backward(gy)
        rec["gy"] = save(gy)
        for k in grad:
            rec["grads"][k] = save(leaves[k].grad)
    CASES[name] = rec


# ---------------------------------------------------------------- elementwise
pos = lambda *s: rn(*s).abs() + 0.1  # noqa: E731
for op in ["relu", "sigmoid", "tanh", "gelu", "neg", "exp", "abs"]:
    case(f"unary/{op}", {"x": rn(3, 5)}, lambda x, op=op: getattr(torch, op)(x) if op != "gelu" else F.gelu(x), {"op": op}, grad=["x"])
for op in ["log", "sqrt"]:
    case(f"unary/{op}", {"x": pos(3, 5)}, lambda x, op=op: getattr(torch, op)(x), {"op": op}, grad=["x"])
for op in ["sin", "cos", "square", "floor", "ceil", "round", "sign"]:
    case(f"unary/{op}", {"x": rn(3, 5) * 2}, lambda x, op=op: getattr(torch, op)(x), {"op": op}, grad=["x"])
for op in ["log1p", "rsqrt", "reciprocal"]:
    case(f"unary/{op}", {"x": pos(3, 5)}, lambda x, op=op: getattr(torch, op)(x), {"op": op}, grad=["x"])
special = torch.tensor([0.0, float("nan"), float("inf"), -float("inf"), -1.5])
case("unary/isnan", {"x": special}, torch.isnan, {"op": "isnan"})
case("unary/isfinite", {"x": special}, torch.isfinite, {"op": "isfinite"})
case("unary/logicalNot", {"x": rn(6) > 0}, torch.logical_not, {"op": "logicalNot"})

for op in ["add", "sub", "mul", "div"]:
    case(f"binary/{op}", {"a": rn(2, 3, 4), "b": rn(3, 1)}, lambda a, b, op=op: getattr(torch, op)(a, b), {"op": op}, grad=["a", "b"])
    case(f"binary/{op}_rank", {"a": rn(4), "b": rn(2, 3, 1)}, lambda a, b, op=op: getattr(torch, op)(a, b), {"op": op}, grad=["a", "b"])
case("binary/pow", {"a": pos(2, 3), "b": rn(3)}, lambda a, b: torch.pow(a, b), {"op": "pow"}, grad=["a", "b"])
for op in ["maximum", "minimum"]:
    case(f"binary/{op}", {"a": rn(2, 3, 4), "b": rn(3, 1)}, lambda a, b, op=op: getattr(torch, op)(a, b), {"op": op}, grad=["a", "b"])
case("binary/remainder", {"a": rn(3, 4) * 3, "b": pos(4)}, lambda a, b: torch.remainder(a, b), {"op": "remainder"}, grad=["a"])
for op in ["logicalAnd", "logicalOr"]:
    case(f"binary/{op}", {"a": rn(3, 4) > 0, "b": rn(4) > 0},
         lambda a, b, op=op: (torch.logical_and if op == "logicalAnd" else torch.logical_or)(a, b), {"op": op})

for op, s in [("add", 2.5), ("sub", -1.25), ("mul", 3.0), ("div", 4.0), ("pow", 2), ("pow", 0.5), ("rsub", 1.5)]:
    x = pos(3, 4) if op == "pow" else rn(3, 4)
    fn = (lambda x, s=s: s - x) if op == "rsub" else (lambda x, op=op, s=s: getattr(torch, op)(x, s))
    case(f"scalar/{op}_{s}", {"x": x}, fn, {"op": op, "s": s}, grad=["x"])
# Integer tensors stay integer with integer scalars and promote to float with fractional ones (as in PyTorch).
case("scalar/add_int", {"x": ri(-5, 5, 6)}, lambda x: x + 3, {"op": "add", "s": 3})
case("scalar/mul_int_frac", {"x": ri(-5, 5, 6)}, lambda x: x * 0.5, {"op": "mul", "s": 0.5})
case("scalar/div_int", {"x": ri(-5, 5, 6)}, lambda x: x / 2, {"op": "div", "s": 2})
case("scalar/maximum", {"x": rn(3, 4)}, lambda x: torch.clamp_min(x, 0.3), {"op": "maximum", "s": 0.3}, grad=["x"])
case("scalar/minimum", {"x": rn(3, 4)}, lambda x: torch.clamp_max(x, -0.1), {"op": "minimum", "s": -0.1}, grad=["x"])
case("scalar/remainder", {"x": rn(3, 4) * 4}, lambda x: torch.remainder(x, 1.5), {"op": "remainder", "s": 1.5}, grad=["x"])

case("clamp/both", {"x": rn(4, 5)}, lambda x: torch.clamp(x, -0.5, 0.7), {"min": -0.5, "max": 0.7}, grad=["x"])
case("clamp/min", {"x": rn(4, 5)}, lambda x: torch.clamp(x, min=0.1), {"min": 0.1, "max": None}, grad=["x"])
case("clamp/max", {"x": rn(4, 5)}, lambda x: torch.clamp(x, max=-0.2), {"min": None, "max": -0.2}, grad=["x"])

a = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
b = torch.tensor([2.0, 2.0, 1.0])
for op in ["eq", "ne", "gt", "ge", "lt", "le"]:
    case(f"compare/{op}", {"a": a, "b": b}, lambda a, b, op=op: getattr(torch, op)(a, b), {"op": op})
    case(f"compare/{op}_scalar", {"a": a}, lambda a, op=op: getattr(torch, op)(a, 2.0), {"op": op, "s": 2})

for d in [1, -1]:
    case(f"softmax/dim{d}", {"x": rn(2, 4, 3)}, lambda x, d=d: torch.softmax(x, d), {"dim": d}, grad=["x"])
    case(f"logSoftmax/dim{d}", {"x": rn(2, 4, 3)}, lambda x, d=d: torch.log_softmax(x, d), {"dim": d}, grad=["x"])

case("matmul/2d", {"a": rn(3, 4), "b": rn(4, 5)}, lambda a, b: a.matmul(b), grad=["a", "b"])
case("matmul/batched", {"a": rn(2, 3, 4), "b": rn(4, 5)}, lambda a, b: a.matmul(b), grad=["a", "b"])
case("matmul/vec", {"a": rn(3, 4), "b": rn(4)}, lambda a, b: a.matmul(b), grad=["a", "b"])

case("where/broadcast", {"c": rn(3, 4) > 0, "a": rn(3, 4), "b": rn(4)}, lambda c, a, b: torch.where(c, a, b), grad=["a", "b"])

# ---------------------------------------------------------------- in place (on clones, as the TS side does)
case("inplace/add_", {"x": rn(3, 4), "o": rn(4)}, lambda x, o: x.clone().add_(o, alpha=2.0), {"alpha": 2.0})
case("inplace/add_scalar", {"x": rn(3, 4)}, lambda x: x.clone().add_(1.5), {"s": 1.5})
case("inplace/sub_", {"x": rn(3, 4), "o": rn(3, 4)}, lambda x, o: x.clone().sub_(o, alpha=0.5), {"alpha": 0.5})
case("inplace/mul_", {"x": rn(3, 4), "o": rn(3, 1)}, lambda x, o: x.clone().mul_(o))
case("inplace/mul_scalar", {"x": rn(3, 4)}, lambda x: x.clone().mul_(-3.0), {"s": -3.0})
case("inplace/div_", {"x": rn(3, 4), "o": pos(4)}, lambda x, o: x.clone().div_(o))
case("inplace/addcmul_", {"x": rn(3, 4), "a": rn(3, 4), "b": rn(4)}, lambda x, a, b: x.clone().addcmul_(a, b, value=0.3), {"value": 0.3})
case("inplace/addcdiv_", {"x": rn(3, 4), "a": rn(3, 4), "b": pos(3, 4)}, lambda x, a, b: x.clone().addcdiv_(a, b, value=-0.7), {"value": -0.7})
case("inplace/zero_", {"x": rn(3, 4)}, lambda x: x.clone().zero_())
case("inplace/copy_", {"x": rn(3, 4), "o": rn(4)}, lambda x, o: x.clone().copy_(o))
case("inplace/clamp_", {"x": rn(3, 4)}, lambda x: x.clone().clamp_(-0.3, 0.4), {"min": -0.3, "max": 0.4})
case("inplace/lerp_", {"x": rn(3, 4), "o": rn(3, 4)}, lambda x, o: x.clone().lerp_(o, 0.3), {"weight": 0.3})
case("inplace/fill_", {"x": rn(3, 4)}, lambda x: x.clone().fill_(2.5), {"value": 2.5})
case("inplace/sqrt_", {"x": pos(3, 4)}, lambda x: x.clone().sqrt_())

# ---------------------------------------------------------------- reductions
for op in ["sum", "mean"]:
    case(f"reduce/{op}_all", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(), {"op": op}, grad=["x"])
    case(f"reduce/{op}_dim1", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(1), {"op": op, "dim": 1, "keepdim": False}, grad=["x"])
    case(f"reduce/{op}_dims_keep", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)([0, 2], keepdim=True), {"op": op, "dim": [0, 2], "keepdim": True}, grad=["x"])
    case(f"reduce/{op}_neg_keep", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(-1, keepdim=True), {"op": op, "dim": -1, "keepdim": True}, grad=["x"])
for op, tfn in [("max", torch.amax), ("min", torch.amin)]:
    case(f"reduce/{op}_all", {"x": rn(3, 4, 5)}, lambda x, tfn=tfn: tfn(x, dim=(0, 1, 2)), {"op": op}, grad=["x"])
    case(f"reduce/{op}_dim1", {"x": rn(3, 4, 5)}, lambda x, tfn=tfn: tfn(x, 1), {"op": op, "dim": 1, "keepdim": False}, grad=["x"])
    case(f"reduce/{op}_dim0_keep", {"x": rn(3, 4, 5)}, lambda x, tfn=tfn: tfn(x, 0, keepdim=True), {"op": op, "dim": 0, "keepdim": True}, grad=["x"])
for op in ["argmax", "argmin"]:
    case(f"reduce/{op}_all", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(), {"op": op})
    case(f"reduce/{op}_dim2", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(2), {"op": op, "dim": 2, "keepdim": False})
    case(f"reduce/{op}_dim1_keep", {"x": rn(3, 4, 5)}, lambda x, op=op: getattr(x, op)(1, keepdim=True), {"op": op, "dim": 1, "keepdim": True})
case("reduce/var_dim1", {"x": rn(3, 6)}, lambda x: x.var(1), {"op": "var", "dim": 1, "keepdim": False}, grad=["x"])
case("reduce/sum_int", {"x": ri(0, 9, 3, 4)}, lambda x: x.sum(), {"op": "sum"})
case("reduce/sum_bool", {"x": rn(3, 4) > 0}, lambda x: x.sum(1), {"op": "sum", "dim": 1, "keepdim": False})
case("reduce/prod_dim1", {"x": pos(3, 4)}, lambda x: x.prod(1), {"op": "prod", "dim": 1, "keepdim": False}, grad=["x"])
case("reduce/norm_all", {"x": rn(3, 4)}, lambda x: x.norm(), {"op": "norm"}, grad=["x"])
case("reduce/norm_dim0_keep", {"x": rn(3, 4)}, lambda x: torch.norm(x, 2, 0, keepdim=True), {"op": "norm", "dim": 0, "keepdim": True}, grad=["x"])
case("reduce/all_dim1", {"x": rn(3, 4) > -1}, lambda x: x.all(1), {"op": "all", "dim": 1, "keepdim": False})
case("reduce/any_all", {"x": rn(3, 4) > 1}, lambda x: x.any(), {"op": "any"})
case("topk/largest", {"x": rn(3, 6)}, lambda x: torch.topk(x, 2, -1, largest=True), {"k": 2, "dim": -1, "largest": True})
case("topk/smallest_dim0", {"x": rn(5, 3)}, lambda x: torch.topk(x, 3, 0, largest=False), {"k": 3, "dim": 0, "largest": False})

# ---------------------------------------------------------------- shape
case("shape/cat", {"a": rn(2, 3, 4), "b": rn(2, 1, 4)}, lambda a, b: torch.cat([a, b], 1), {"dim": 1}, grad=["a", "b"])
case("shape/cat_neg", {"a": rn(2, 3), "b": rn(2, 2)}, lambda a, b: torch.cat([a, b], -1), {"dim": -1}, grad=["a", "b"])
case("shape/stack0", {"a": rn(2, 3), "b": rn(2, 3)}, lambda a, b: torch.stack([a, b], 0), {"dim": 0}, grad=["a", "b"])
case("shape/stack_last", {"a": rn(2, 3), "b": rn(2, 3)}, lambda a, b: torch.stack([a, b], -1), {"dim": -1}, grad=["a", "b"])
case("split/int", {"x": rn(7, 3)}, lambda x: torch.split(x, 3, 0), {"size": 3, "dim": 0})
case("split/sizes", {"x": rn(2, 6)}, lambda x: torch.split(x, [1, 2, 3], 1), {"size": [1, 2, 3], "dim": 1})
case("chunk/even", {"x": rn(6, 2)}, lambda x: torch.chunk(x, 3, 0), {"chunks": 3, "dim": 0})
case("chunk/uneven", {"x": rn(2, 7)}, lambda x: torch.chunk(x, 3, 1), {"chunks": 3, "dim": 1})
case("chunk/fewer", {"x": rn(6)}, lambda x: torch.chunk(x, 4, 0), {"chunks": 4, "dim": 0})
# Gradients through split/chunk: the pieces are concatenated in reverse order.
case("splitGrad/int", {"x": rn(7, 3)}, lambda x: torch.cat(torch.split(x, 3, 0)[::-1], 0), {"size": 3, "dim": 0}, grad=["x"])
case("splitGrad/chunk", {"x": rn(2, 7)}, lambda x: torch.cat(torch.chunk(x, 3, 1)[::-1], 1), {"chunks": 3, "dim": 1}, grad=["x"])
case("shape/reshape", {"x": rn(2, 3, 4)}, lambda x: x.reshape(4, -1), {"shape": [4, -1]}, grad=["x"])
case("shape/reshape_noncontig", {"x": rn(2, 3, 4)}, lambda x: x.transpose(0, 2).reshape(-1), {"shape": [-1], "pre": "transpose02"}, grad=["x"])
case("shape/view", {"x": rn(2, 3, 4)}, lambda x: x.view(6, 4), {"shape": [6, 4]}, grad=["x"])
case("shape/permute", {"x": rn(2, 3, 4)}, lambda x: x.permute(2, 0, 1), {"dims": [2, 0, 1]}, grad=["x"])
case("shape/transpose", {"x": rn(2, 3, 4)}, lambda x: x.transpose(0, -1), {"a": 0, "b": -1}, grad=["x"])
t = rn(2, 3, 4)
case("shape/contiguous", {"x": t}, lambda x: x.permute(1, 2, 0).contiguous(), grad=["x"],
     meta={"strides": list(t.permute(1, 2, 0).contiguous().stride()), "permutedStrides": list(t.permute(1, 2, 0).stride())})
case("shape/flatten", {"x": rn(2, 3, 4, 5)}, lambda x: x.flatten(1), {"start": 1, "end": -1}, grad=["x"])
case("shape/flatten_mid", {"x": rn(2, 3, 4, 5)}, lambda x: x.flatten(1, 2), {"start": 1, "end": 2}, grad=["x"])
case("shape/squeeze_all", {"x": rn(1, 3, 1, 4)}, lambda x: x.squeeze(), {"dim": None}, grad=["x"])
case("shape/squeeze_dim", {"x": rn(1, 3, 1, 4)}, lambda x: x.squeeze(2), {"dim": 2}, grad=["x"])
case("shape/squeeze_noop", {"x": rn(1, 3, 1, 4)}, lambda x: x.squeeze(1), {"dim": 1}, grad=["x"])
case("shape/unsqueeze", {"x": rn(3, 4)}, lambda x: x.unsqueeze(1), {"dim": 1}, grad=["x"])
case("shape/unsqueeze_end", {"x": rn(3, 4)}, lambda x: x.unsqueeze(-1), {"dim": -1}, grad=["x"])
case("shape/expand", {"x": rn(3, 1)}, lambda x: x.expand(2, 3, 4), {"shape": [2, 3, 4]}, grad=["x"])
case("shape/expand_keep", {"x": rn(3, 1)}, lambda x: x.expand(-1, 5), {"shape": [-1, 5]}, grad=["x"])
case("shape/narrow", {"x": rn(4, 6)}, lambda x: x.narrow(1, 2, 3), {"dim": 1, "start": 2, "length": 3}, grad=["x"])
case("shape/narrow_neg", {"x": rn(4, 6)}, lambda x: x.narrow(0, -3, 2), {"dim": 0, "start": -3, "length": 2}, grad=["x"])
case("slice/step", {"x": rn(4, 9)}, lambda x: x[:, 1:8:3], {"dim": 1, "start": 1, "end": 8, "step": 3}, grad=["x"])
case("slice/neg", {"x": rn(5, 4)}, lambda x: x[-3:-1], {"dim": 0, "start": -3, "end": -1, "step": 1}, grad=["x"])
case("slice/open", {"x": rn(5, 4)}, lambda x: x[:, 2:], {"dim": 1, "start": 2, "end": None, "step": 1}, grad=["x"])
case("shape/indexSelect", {"x": rn(5, 3), "i": torch.tensor([4, 0, 0, 2])}, lambda x, i: x.index_select(0, i), {"dim": 0}, grad=["x"])
case("shape/indexSelect1", {"x": rn(3, 5), "i": torch.tensor([1, 3])}, lambda x, i: x.index_select(1, i), {"dim": 1}, grad=["x"])
case("shape/flip", {"x": rn(2, 3, 4)}, lambda x: x.flip([0, 2]), {"dims": [0, 2]}, grad=["x"])
case("shape/flip_neg", {"x": rn(2, 3, 4)}, lambda x: x.flip(-1), {"dims": [-1]}, grad=["x"])
case("shape/repeat", {"x": rn(2, 3)}, lambda x: x.repeat(2, 1, 2), {"repeats": [2, 1, 2]}, grad=["x"])
case("shape/gather", {"x": rn(3, 4), "i": torch.tensor([[0, 3], [1, 1], [2, 0]])}, lambda x, i: x.gather(1, i), {"dim": 1}, grad=["x"])
case("pad/constant", {"x": rn(1, 2, 3, 4)}, lambda x: F.pad(x, [1, 2, 0, 1], value=0.5), {"pads": [1, 2, 0, 1], "mode": "constant", "value": 0.5}, grad=["x"])
case("pad/crop", {"x": rn(1, 2, 3, 4)}, lambda x: F.pad(x, [-1, 1]), {"pads": [-1, 1], "mode": "constant", "value": 0}, grad=["x"])
case("pad/reflect", {"x": rn(1, 2, 4, 5)}, lambda x: F.pad(x, [2, 1, 1, 2], mode="reflect"), {"pads": [2, 1, 1, 2], "mode": "reflect"}, grad=["x"])
case("pad/replicate", {"x": rn(1, 2, 4, 5)}, lambda x: F.pad(x, [1, 3, 2, 0], mode="replicate"), {"pads": [1, 3, 2, 0], "mode": "replicate"}, grad=["x"])

# ---------------------------------------------------------------- nn ops
conv_variants = {
    "basic": dict(c=3, o=4, k=3, hw=(7, 6), stride=1, padding=0, dilation=1, groups=1, bias=True),
    "stride2_pad1": dict(c=3, o=4, k=3, hw=(9, 8), stride=2, padding=1, dilation=1, groups=1, bias=True),
    "dilation2": dict(c=2, o=3, k=3, hw=(9, 9), stride=1, padding=2, dilation=2, groups=1, bias=True),
    "groups2": dict(c=4, o=6, k=3, hw=(6, 7), stride=1, padding=1, dilation=1, groups=2, bias=True),
    "depthwise": dict(c=4, o=4, k=3, hw=(6, 6), stride=1, padding=1, dilation=1, groups=4, bias=False),
    "nobias_1x1": dict(c=5, o=3, k=1, hw=(4, 4), stride=1, padding=0, dilation=1, groups=1, bias=False),
    "pairs": dict(c=2, o=3, k=(3, 2), hw=(8, 9), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=1, bias=True),
}
for name, p in conv_variants.items():
    k = p["k"] if isinstance(p["k"], tuple) else (p["k"], p["k"])
    ins = {"x": rn(2, p["c"], *p["hw"]), "w": rn(p["o"], p["c"] // p["groups"], *k)}
    if p["bias"]:
        ins["b"] = rn(p["o"])
    params = {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in p.items() if kk in ("stride", "padding", "dilation", "groups")}
    case(f"conv2d/{name}", ins, lambda x, w, b=None, p=p: F.conv2d(x, w, b, p["stride"], p["padding"], p["dilation"], p["groups"]),
         params, grad=list(ins))

# Batch norm, training: batch statistics, running stats updated in place (unbiased variance).
def bn_train(x, w, b, rm, rv):
    rm, rv = rm.detach().clone(), rv.detach().clone()
    y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-4)
    return {"y": y, "runningMean": rm, "runningVar": rv}


for name, shape in [("train4d", (3, 4, 5, 5)), ("train2d", (6, 4))]:
    case(f"batchNorm/{name}", {"x": rn(*shape) * 2 + 1, "w": rn(4), "b": rn(4), "rm": rn(4), "rv": rn(4).abs() + 0.5}, bn_train,
         {"training": True, "momentum": 0.2, "eps": 1e-4}, grad=["x", "w", "b"])
case("batchNorm/eval", {"x": rn(2, 4, 3, 3), "w": rn(4), "b": rn(4), "rm": rn(4), "rv": rn(4).abs() + 0.5},
     lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5), {"training": False, "eps": 1e-5}, grad=["x", "w", "b"])
case("batchNorm/train_noaffine", {"x": rn(4, 3, 2, 2)}, lambda x: F.batch_norm(x, None, None, training=True), {"training": True}, grad=["x"])

# Group norm: no running statistics, so one case per shape covers training and eval.
for name, shape, g, affine, eps in [("g2_4d", (2, 6, 5, 4), 2, True, 1e-5), ("g1_layer", (3, 4, 3, 3), 1, True, 1e-5),
                                    ("g_eq_c", (2, 4, 3, 5), 4, True, 1e-3), ("g3_noaffine_3d", (2, 6, 7), 3, False, 1e-5)]:
    ins = {"x": rn(*shape) * 2 + 1}
    if affine:
        ins.update(w=rn(shape[1]), b=rn(shape[1]))
    case(f"groupNorm/{name}", ins, lambda x, w=None, b=None, g=g, eps=eps: F.group_norm(x, g, w, b, eps),
         {"numGroups": g, "eps": eps}, grad=list(ins))

for name, k, kw in [("k2", 2, {}), ("k3s2p1", 3, dict(stride=2, padding=1)), ("dil2", 3, dict(stride=1, dilation=2)),
                    ("ceil", 3, dict(stride=2, ceil_mode=True)), ("rect", (2, 3), dict(stride=(1, 2)))]:
    params = {"kernel": list(k) if isinstance(k, tuple) else k, **camel(kw)}
    case(f"maxPool2d/{name}", {"x": rn(2, 3, 7, 8)}, lambda x, k=k, kw=kw: F.max_pool2d(x, k, **kw), params, grad=["x"])
for name, k, kw in [("k2", 2, {}), ("k3s2p1", 3, dict(stride=2, padding=1)), ("k3s2p1_excl", 3, dict(stride=2, padding=1, count_include_pad=False)),
                    ("ceil", 3, dict(stride=2, ceil_mode=True))]:
    params = {"kernel": k, **camel(kw)}
    case(f"avgPool2d/{name}", {"x": rn(2, 3, 7, 8)}, lambda x, k=k, kw=kw: F.avg_pool2d(x, k, **kw), params, grad=["x"])
for name, size in [("1", 1), ("3", 3), ("2x3", (2, 3)), ("up", 9)]:
    case(f"adaptiveAvgPool2d/{name}", {"x": rn(2, 3, 7, 8)}, lambda x, size=size: F.adaptive_avg_pool2d(x, size),
         {"size": list(size) if isinstance(size, tuple) else size}, grad=["x"])
for name, size in [("3", 3), ("2x5", (2, 5))]:
    case(f"adaptiveMaxPool2d/{name}", {"x": rn(2, 3, 7, 8)}, lambda x, size=size: F.adaptive_max_pool2d(x, size),
         {"size": list(size) if isinstance(size, tuple) else size}, grad=["x"])

interp = [
    ("bilinear_size_ac", dict(size=(9, 11), mode="bilinear", align_corners=True)),
    ("bilinear_size", dict(size=(9, 11), mode="bilinear", align_corners=False)),
    ("bilinear_down_ac", dict(size=(3, 2), mode="bilinear", align_corners=True)),
    ("bilinear_down", dict(size=(3, 2), mode="bilinear", align_corners=False)),
    ("bilinear_scale2", dict(scale_factor=2, mode="bilinear", align_corners=False)),
    ("bilinear_scale2_ac", dict(scale_factor=2, mode="bilinear", align_corners=True)),
    ("bilinear_scale1.5", dict(scale_factor=1.5, mode="bilinear", align_corners=False)),
    ("bilinear_scale0.7", dict(scale_factor=0.7, mode="bilinear", align_corners=False)),
    ("bilinear_scale_pair", dict(scale_factor=(1.3, 2.6), mode="bilinear", align_corners=False)),
    ("nearest_size", dict(size=(7, 13), mode="nearest")),
    ("nearest_scale2", dict(scale_factor=2, mode="nearest")),
    ("nearest_scale1.5", dict(scale_factor=1.5, mode="nearest")),
    ("nearest_scale0.6", dict(scale_factor=0.6, mode="nearest")),
]
for name, kw in interp:
    params = {"mode": kw["mode"]}
    if "size" in kw:
        params["size"] = list(kw["size"])
    else:
        sf = kw["scale_factor"]
        params["scaleFactor"] = list(sf) if isinstance(sf, tuple) else sf
    if "align_corners" in kw:
        params["alignCorners"] = kw["align_corners"]
    case(f"interpolate/{name}", {"x": rn(2, 3, 5, 6)}, lambda x, kw=kw: F.interpolate(x, **kw), params, grad=["x"])

case("linear/bias", {"x": rn(4, 5), "w": rn(3, 5), "b": rn(3)}, lambda x, w, b=None: F.linear(x, w, b), grad=["x", "w", "b"])
case("linear/nobias_3d", {"x": rn(2, 4, 5), "w": rn(3, 5)}, lambda x, w, b=None: F.linear(x, w, b), grad=["x", "w"])

case("dropout/p0", {"x": rn(4, 5)}, lambda x: F.dropout(x, 0.0, True), {"p": 0.0, "training": True}, grad=["x"])
case("dropout/p1", {"x": rn(4, 5)}, lambda x: F.dropout(x, 1.0, True), {"p": 1.0, "training": True}, grad=["x"])
case("dropout/eval", {"x": rn(4, 5)}, lambda x: F.dropout(x, 0.5, False), {"p": 0.5, "training": False}, grad=["x"])

case("dropout2d/p0", {"x": rn(2, 3, 4, 5)}, lambda x: F.dropout2d(x, 0.0, True), {"p": 0.0, "training": True}, grad=["x"])
case("dropout2d/p1", {"x": rn(2, 3, 4, 5)}, lambda x: F.dropout2d(x, 1.0, True), {"p": 1.0, "training": True}, grad=["x"])
case("dropout2d/eval", {"x": rn(2, 3, 4, 5)}, lambda x: F.dropout2d(x, 0.5, False), {"p": 0.5, "training": False}, grad=["x"])

case("oneHot/auto", {"x": torch.tensor([[0, 2], [1, 4]])}, lambda x: F.one_hot(x), {"numClasses": -1})
case("oneHot/n6", {"x": torch.tensor([3, 0, 5])}, lambda x: F.one_hot(x, 6), {"numClasses": 6})
case("bincount/minlength", {"x": torch.tensor([0, 3, 3, 1, 7])}, lambda x: torch.bincount(x, minlength=10), {"minlength": 10})
case("bincount/auto", {"x": torch.tensor([2, 2, 0])}, lambda x: torch.bincount(x), {"minlength": 0})

# ---------------------------------------------------------------- losses
def seg_target(n, h, w, c, ignore=None, frac=0.25):
    t = ri(0, c, n, h, w)
    if ignore is not None:
        t[torch.rand(n, h, w, generator=gen) < frac] = ignore
    return t


for red in ["mean", "sum", "none"]:
    case(f"crossEntropy/4d_{red}", {"x": rn(2, 4, 3, 5), "t": seg_target(2, 3, 5, 4)},
         lambda x, t, red=red: F.cross_entropy(x, t, reduction=red), {"reduction": red}, grad=["x"])
    case(f"crossEntropy/ignore255_{red}", {"x": rn(2, 4, 3, 5), "t": seg_target(2, 3, 5, 4, ignore=255)},
         lambda x, t, red=red: F.cross_entropy(x, t, ignore_index=255, reduction=red), {"reduction": red, "ignoreIndex": 255}, grad=["x"])
    case(f"crossEntropy/weighted_{red}", {"x": rn(2, 4, 3, 5), "t": seg_target(2, 3, 5, 4, ignore=-100), "w": rn(4).abs() + 0.2},
         lambda x, t, w, red=red: F.cross_entropy(x, t, weight=w, reduction=red), {"reduction": red}, grad=["x"])
    case(f"crossEntropy/smooth_{red}", {"x": rn(2, 4, 3, 5), "t": seg_target(2, 3, 5, 4, ignore=255), "w": rn(4).abs() + 0.2},
         lambda x, t, w, red=red: F.cross_entropy(x, t, weight=w, ignore_index=255, reduction=red, label_smoothing=0.1),
         {"reduction": red, "ignoreIndex": 255, "labelSmoothing": 0.1}, grad=["x"])
case("crossEntropy/2d", {"x": rn(6, 5), "t": ri(0, 5, 6)}, lambda x, t: F.cross_entropy(x, t), {}, grad=["x"])
case("crossEntropy/2d_smooth", {"x": rn(6, 5), "t": ri(0, 5, 6)}, lambda x, t: F.cross_entropy(x, t, label_smoothing=0.3), {"labelSmoothing": 0.3}, grad=["x"])
for red in ["mean", "sum", "none"]:
    case(f"nllLoss/2d_{red}", {"x": torch.log_softmax(rn(6, 5), 1), "t": torch.tensor([0, 4, -100, 2, 2, 1])},
         lambda x, t, red=red: F.nll_loss(x, t, reduction=red), {"reduction": red}, grad=["x"])
    case(f"nllLoss/4d_weighted_{red}", {"x": torch.log_softmax(rn(2, 3, 4, 4), 1), "t": seg_target(2, 4, 4, 3, ignore=7), "w": rn(3).abs() + 0.2},
         lambda x, t, w, red=red: F.nll_loss(x, t, weight=w, ignore_index=7, reduction=red), {"reduction": red, "ignoreIndex": 7}, grad=["x"])
for red in ["mean", "sum", "none"]:
    case(f"bceWithLogits/{red}", {"x": rn(4, 3) * 3, "t": torch.rand(4, 3, generator=gen), "w": pos(3), "pw": pos(3)},
         lambda x, t, w, pw, red=red: F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=red), {"reduction": red}, grad=["x"])
case("bceWithLogits/plain", {"x": rn(2, 5), "t": (rn(2, 5) > 0).float()}, lambda x, t: F.binary_cross_entropy_with_logits(x, t), {}, grad=["x"])

# ---------------------------------------------------------------- memory layout and mixed precision
x = rn(2, 3, 5, 6)
xc = x.contiguous(memory_format=torch.channels_last)
w = rn(4, 3, 3, 3)
yc = F.conv2d(xc, w, None, 1, 1)
case("channelsLast/contiguous", {"x": x}, lambda x: x.contiguous(memory_format=torch.channels_last),
     meta={"strides": list(xc.stride()), "isChannelsLast": xc.is_contiguous(memory_format=torch.channels_last)})
case("channelsLast/conv2d", {"x": x, "w": w}, lambda x, w: F.conv2d(x.contiguous(memory_format=torch.channels_last), w, None, 1, 1),
     grad=["x", "w"], meta={"outChannelsLast": yc.is_contiguous(memory_format=torch.channels_last), "outStrides": list(yc.stride())})


def bf16_conv(x, w, b):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.conv2d(x, w, b, 1, 1)
    return {"y": y, "fp32": F.conv2d(x, w, b, 1, 1)}


case("autocast/conv2d_bf16", {"x": rn(2, 8, 9, 9), "w": rn(16, 8, 3, 3) * 0.2, "b": rn(16)}, bf16_conv)


def bf16_linear(x, w):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = F.linear(x, w)
        s = torch.softmax(y, 1)  # softmax autocasts to float32 on CPU
    return {"y": y, "softmax": s}


case("autocast/linear_softmax", {"x": rn(4, 16), "w": rn(8, 16) * 0.3}, bf16_linear)

# ---------------------------------------------------------------- random streams
def streams():
    torch.manual_seed(42)
    out = {"rand": torch.rand(3, 4), "randn": torch.randn(5), "randint": torch.randint(0, 10, (6,)),
           "randBig": torch.rand(100), "randnBig": torch.randn(37, 3), "randintBig": torch.randint(-3, 1000, (50,)),
           "randperm": torch.randperm(12), "randn64": torch.randn(9, dtype=torch.float64)}
    torch.manual_seed(7)
    out["reseed"] = torch.rand(5)
    return out


case("random/streams", {}, streams, {"seed": 42})

# ---------------------------------------------------------------- creation
case("creation/arange_float", {}, lambda: torch.arange(0, 1, 0.1), {"start": 0, "end": 1, "step": 0.1})
case("creation/arange_int", {}, lambda: torch.arange(10, 2, -3), {"start": 10, "end": 2, "step": -3})
case("creation/arange_one", {}, lambda: torch.arange(5), {"end": 5})
case("creation/full", {}, lambda: torch.full((2, 3), -1.5), {"shape": [2, 3], "value": -1.5})

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"torch": torch.__version__, "numpy": np.__version__, "cases": CASES}, f, indent=1)
print(f"ops.py: {len(CASES)} cases, {_count[0]} arrays in {OUT}")
