"""PyTorch's side of `npm run bench -- profile`: one SGD training step of an architecture built by
scripts/reference/*_model.py (smp's code), timed and profiled op by op.

usage: /usr/bin/python3 bench/pytorch_profile.py '<json>'
json: {"arch": "PAN", "encoder": "resnet34", "classes": 21, "size": 512, "batch": 4, "threads": 2, "repeats": 5}
For fp32 and bf16 (autocast) and each of NCHW / channels-last: the median step ms. For each precision's
faster layout: per phase (forward = model + loss, backward, optimizer) and op, the calls and self ms per step
from torch.autograd.profiler. Prints {"steps": {mode: ms}, "fastest": {precision: mode},
"profile": {precision: [[phase, op, calls, self_ms], ...]}}.
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


out = {'steps': {}, 'fastest': {}, 'profile': {}, 'torch': torch.__version__}
for precision in ['fp32', 'bf16']:
    best = None
    for cl in [False, True]:
        mode = precision + ('_cl' if cl else '')
        phases = setup(precision, cl)
        out['steps'][mode] = median_ms(lambda: [f() for f in phases.values()], reps, warm=2)
        if best is None or out['steps'][mode] < out['steps'][best[0]]:
            best = (mode, phases)
    mode, phases = best
    out['fastest'][precision] = mode
    rows = {}
    n = 2
    for _ in range(n):
        for phase, fn in phases.items():
            with torch.autograd.profiler.profile() as prof:
                fn()
            for e in prof.key_averages():
                r = rows.setdefault((phase, e.key), [0, 0.0])
                r[0] += e.count
                r[1] += e.self_cpu_time_total / 1000
    out['profile'][precision] = [[p, k, c / n, ms / n] for (p, k), (c, ms) in rows.items()]
print(json.dumps(out))
