"""PyTorch's optimizer step on PAN's parameters, for bench/optimizer.ts.

usage: /usr/bin/python3 bench/pytorch_optimizer.py '<json>'
json: {"encoder": "resnet18", "threads": 2, "repeats": 7}
Prints {"sgd": {"single": ms, "foreach": ms}, "adamw": {...}}: medians of torch.optim.SGD (momentum 0.9,
weight decay 1e-4) and AdamW steps over channels-last parameters with fixed gradients, per path.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
import pan_model  # noqa: E402
from pytorch_timing import median_ms  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get('threads', 2))
torch.manual_seed(0)
model = pan_model.PAN(encoder_name=cfg.get('encoder', 'resnet18'), classes=21).to(memory_format=torch.channels_last)
params = list(model.parameters())
for p in params:
    p.grad = torch.randn_like(p) * 1e-3
out = {}
for name, make in [('sgd', lambda f: torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4, foreach=f)),
                   ('adamw', lambda f: torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4, foreach=f))]:
    out[name] = {}
    for path, foreach in [('single', False), ('foreach', True)]:
        opt = make(foreach)
        out[name][path] = median_ms(opt.step, cfg.get('repeats', 7), warm=2)
print(json.dumps(out))
