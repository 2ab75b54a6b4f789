"""PyTorch timings of the same PAN (scripts/reference/pan_model.py, smp's PAN), for bench/pan.ts.

usage: /usr/bin/python3 bench/pytorch_pan.py '<json config>'
config: {"encoder": "resnet34", "classes": 21, "size": 512, "threads": 2, "repeats": 5,
         "train_batch": 4, "modes": ["fp32", "fp32_cl", "bf16_cl", "fp32_frozen"], "train": true}
Modes are eager, except fp32_frozen: torch.jit.optimize_for_inference(torch.jit.freeze(trace)),
PyTorch's own oneDNN graph (blocked tensors, prepacked weights; inference only).
Prints one JSON object: {"infer": {mode: ms}, "train": {mode: ms}} (medians after one warm-up).
"""
import json
import os
import sys
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pytorch_timing import median_ms  # noqa: E402
import encoders_model  # noqa: E402
import pan_model  # noqa: E402

encoders_model.use_in_architectures()  # MobileNetV2 and ResNeXt encoders too

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get('threads', 2))
torch.manual_seed(0)
size, reps = cfg.get('size', 512), cfg.get('repeats', 5)


def setup(mode):
    m = pan_model.PAN(encoder_name=cfg.get('encoder', 'resnet34'), classes=cfg.get('classes', 21))
    cl = mode.endswith('_cl')
    if cl:
        m = m.to(memory_format=torch.channels_last)
    return m, cl


out = {'infer': {}, 'train': {}, 'torch': torch.__version__}
for mode in cfg.get('modes', ['fp32', 'fp32_cl', 'bf16_cl']):
    m, cl = setup(mode)
    m.eval()
    x = torch.randn(1, 3, size, size)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    bf16 = mode.startswith('bf16')
    run = m
    if mode == 'fp32_frozen':
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the tracer's note on the input-size check, which is constant here
            run = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(m, x, check_trace=False)))

    def infer():
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            run(x)
    out['infer'][mode] = median_ms(infer, reps)
    if cfg.get('train', True) and mode != 'fp32_frozen':
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        xb = torch.randn(cfg.get('train_batch', 4), 3, size, size)
        if cl:
            xb = xb.contiguous(memory_format=torch.channels_last)
        yb = torch.randint(0, cfg.get('classes', 21), (xb.shape[0], size, size))

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
                logits = m(xb)
            loss = torch.nn.functional.cross_entropy(logits.float(), yb, ignore_index=255)
            loss.backward()
            opt.step()
        out['train'][mode] = median_ms(step, max(2, reps // 2))
print(json.dumps(out))
