"""PyTorch's side of `npm run bench -- profile`: one SGD training step of an architecture built by
scripts/reference/*_model.py (smp's code), timed and profiled op by op.

usage: /usr/bin/python3 bench/pytorch_profile.py '<json>'
json: {"arch": "PAN", "encoder": "resnet34", "classes": 21, "size": 512, "batch": 4, "threads": 2, "repeats": 5}
Then one JSON request per stdin line, one JSON answer per stdout line, so that the caller can alternate
PyTorch's steps with its own (drift in the machine's load then falls on both sides alike):
  {"op": "layouts", "precision": "fp32"|"bf16"} -> {"steps": {mode: median ms}, "fastest": mode}: NCHW and
      channels-last timed (median of `repeats` after 2 warm-up); the faster one is kept for the requests below
  {"op": "step", "precision": p} -> {"ms": one step of the kept mode}
  {"op": "profile", "precision": p} -> {"rows": [[phase, op, calls, self_ms], ...]}: per phase (forward = model +
      loss, backward, optimizer) and op, calls and self ms per step from torch.autograd.profiler (2 steps)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_timing import median_ms, reference_class  # noqa: E402
import encoders_model  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get('threads', 2))
encoders_model.use_in_architectures()
cls = reference_class(cfg.get('arch', 'PAN'))
size, batch, classes, reps = cfg.get('size', 512), cfg.get('batch', 4), cfg.get('classes', 21), cfg.get('repeats', 5)


def setup(precision, cl):
    torch.manual_seed(0)
    m = cls(encoder_name=cfg.get('encoder', 'resnet34'), classes=classes).train()
    x = torch.randn(batch, 3, size, size)
    if cl:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (batch, size, size))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    state = {}

    def forward():
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
            logits = m(x)
        state['loss'] = torch.nn.functional.cross_entropy(logits.float(), y, ignore_index=255)

    def backward():
        state.pop('loss').backward()

    return {'forward': forward, 'backward': backward, 'optimizer': opt.step}


def step(phases):
    for f in phases.values():
        f()


def profile(phases, n=2):
    rows = {}
    for _ in range(n):
        for phase, fn in phases.items():
            with torch.autograd.profiler.profile() as prof:
                fn()
            for e in prof.key_averages():
                r = rows.setdefault((phase, e.key), [0, 0.0])
                r[0] += e.count
                r[1] += e.self_cpu_time_total / 1000
    return [[p, k, c / n, ms / n] for (p, k), (c, ms) in rows.items()]


kept = {}
for line in sys.stdin:
    req = json.loads(line)
    precision = req['precision']
    if req['op'] == 'layouts':
        steps, best = {}, None
        for cl in [False, True]:
            mode = precision + ('_cl' if cl else '')
            phases = setup(precision, cl)
            steps[mode] = median_ms(lambda: step(phases), reps, warm=2)
            if best is None or steps[mode] < steps[best[0]]:
                best = (mode, phases)
        kept[precision] = best[1]
        answer = {'steps': steps, 'fastest': best[0], 'torch': torch.__version__}
    elif req['op'] == 'step':
        answer = {'ms': median_ms(lambda: step(kept[precision]), 1, warm=0)}
    else:
        answer = {'rows': profile(kept.pop(precision))}
    print(json.dumps(answer), flush=True)
