"""PyTorch timings of every architecture, built by scripts/reference/*_model.py (smp's code), for bench/models.ts.

usage: /usr/bin/python3 bench/pytorch_models.py '<json config>'
config: {"arch": "Unet", "encoder": "resnet34", "classes": 21, "size": 512, "threads": 2, "repeats": 5, "train_batch": 4}
Inference modes (batch 1): fp32 and bf16 eager in NCHW and channels-last, and fp32_frozen =
torch.jit.optimize_for_inference(torch.jit.freeze(trace)), PyTorch's own oneDNN graph. Training: one SGD
step (momentum 0.9) in bf16 autocast, channels-last and NCHW. Prints {"infer": {mode: ms}, "train": {mode: ms}}
(medians after one warm-up), and {"failed": {mode: error}} for modes PyTorch cannot run; an architecture the references do not have prints {"missing": name}.
"""
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_timing import median_ms, reference_class  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get('threads', 2))
torch.manual_seed(0)
size, reps, arch = cfg.get('size', 512), cfg.get('repeats', 5), cfg['arch']
import encoders_model  # noqa: E402

encoders_model.use_in_architectures()  # MobileNetV2 and ResNeXt for every architecture reference
cls = reference_class(arch)
if cls is None:
    print(json.dumps({'missing': arch}))
    sys.exit(0)


def build(cl):
    m = cls(encoder_name=cfg.get('encoder', 'resnet34'), classes=cfg.get('classes', 21))
    return m.to(memory_format=torch.channels_last) if cl else m


out = {'infer': {}, 'train': {}, 'torch': torch.__version__}
for mode in ['fp32', 'fp32_cl', 'fp32_frozen', 'bf16', 'bf16_cl']:
    cl = mode.endswith('_cl')
    m = build(cl).eval()
    x = torch.randn(1, 3, size, size)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = mode.startswith('bf16')
    run = m
    if mode == 'fp32_frozen':
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')
            run = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x, check_trace=False)))

    def infer():
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            run(x)
    try:
        out['infer'][mode] = median_ms(infer, reps)
    except RuntimeError as e:  # torch 1.13's CPU autocast runs GroupNorm (FPN) with mixed dtypes and fails
        out.setdefault('failed', {})[mode] = str(e).split('\n')[0]

for mode in ['bf16', 'bf16_cl']:
    cl = mode.endswith('_cl')
    m = build(cl).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    xb = torch.randn(cfg.get('train_batch', 4), 3, size, size)
    if cl:
        xb = xb.contiguous(memory_format=torch.channels_last)
    yb = torch.randint(0, cfg.get('classes', 21), (xb.shape[0], size, size))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            logits = m(xb)
        torch.nn.functional.cross_entropy(logits.float(), yb, ignore_index=255).backward()
        opt.step()
    try:
        out['train'][mode] = median_ms(step, max(2, reps // 2))
    except RuntimeError as e:
        out.setdefault('failed', {})['train_' + mode] = str(e).split('\n')[0]
print(json.dumps(out))
