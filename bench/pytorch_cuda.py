"""PyTorch eager timings of the same PAN (scripts/reference/pan_model.py, smp's PAN) on a CUDA GPU, for bench/cuda.ts.

usage: python3 bench/pytorch_cuda.py '<json config>'
config: {"encoder": "resnet34", "classes": 21, "size": 512, "repeats": 20, "train_batches": [4, 16],
         "infer": ["fp32", ...], "train": ["fp32", ...]}
modes: fp32 | fp32_cl | bf16_cl | fp16_cl (bf16/fp16: torch.autocast; fp16 training with torch.amp.GradScaler).
CUDA graphs (config "graph_mode", e.g. "bf16_cl", and "graph_batches", e.g. [1, 4, 16]): eager and torch.cuda.graph
timings of the training step (SGD) and of inference at each batch, as torch.cuda.graphs' docs capture them.
Prints one JSON object: {"infer": {mode: ms}, "train": {"<mode>_b<batch>": ms}, "graph": {"<train|infer>_<eager|graphed>_b<batch>": ms},
"torch": version, "gpu": name}.
Times are medians over `repeats` runs after warm-up, each ended by torch.cuda.synchronize().
"""
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
import pan_model  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.manual_seed(0)
dev = 'cuda'
size, reps, classes = cfg.get('size', 512), cfg.get('repeats', 20), cfg.get('classes', 21)
DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}


def median_ms(fn, n, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)


def model(mode):
    m = pan_model.PAN(encoder_name=cfg.get('encoder', 'resnet34'), classes=classes).to(dev)
    if mode.endswith('_cl'):
        m = m.to(memory_format=torch.channels_last)
    return m


def batch(mode, n):
    x = torch.randn(n, 3, size, size, device=dev)
    return x.contiguous(memory_format=torch.channels_last) if mode.endswith('_cl') else x


out = {'infer': {}, 'train': {}, 'torch': torch.__version__, 'gpu': torch.cuda.get_device_name()}
for mode in cfg.get('infer', []):
    m = model(mode).eval()
    x = batch(mode, 1)
    amp = DTYPES.get(mode.split('_')[0])

    def infer():
        with torch.no_grad(), torch.autocast('cuda', dtype=amp or torch.float32, enabled=amp is not None):
            m(x)
    out['infer'][mode] = median_ms(infer, reps)
    del m

for mode in cfg.get('train', []):
    for n in cfg.get('train_batches', [4]):
        m = model(mode).train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        xb = batch(mode, n)
        yb = torch.randint(0, classes, (n, size, size), device=dev)
        amp = DTYPES.get(mode.split('_')[0])
        scaler = torch.amp.GradScaler('cuda') if amp is torch.float16 else None

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast('cuda', dtype=amp or torch.float32, enabled=amp is not None):
                logits = m(xb)
            loss = torch.nn.functional.cross_entropy(logits.float(), yb, ignore_index=255)
            if scaler:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
        out['train'][f'{mode}_b{n}'] = median_ms(step, max(3, reps // 2))
        del m, opt


def graph_rows(mode, batches):
    """Eager vs torch.cuda.graph-replayed training step and inference, per batch."""
    amp = DTYPES.get(mode.split('_')[0])
    rows = {}
    for n in batches:
        m = model(mode).train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
        xb = batch(mode, n)
        yb = torch.randint(0, classes, (n, size, size), device=dev)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast('cuda', dtype=amp or torch.float32, enabled=amp is not None):
                logits = m(xb)
            loss = torch.nn.functional.cross_entropy(logits.float(), yb, ignore_index=255)
            loss.backward()
            opt.step()
            return loss
        rows[f'train_eager_b{n}'] = median_ms(step, max(3, reps // 2))
        # Warm-up on a side stream, then capture the whole step (gradients kept: zero_grad inside is
        # set_to_none before the capture, as the docs' whole-network example does).
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(g):
            with torch.autocast('cuda', dtype=amp or torch.float32, enabled=amp is not None):
                logits = m(xb)
            static_loss = torch.nn.functional.cross_entropy(logits.float(), yb, ignore_index=255)
            static_loss.backward()
            opt.step()
        rows[f'train_graphed_b{n}'] = median_ms(g.replay, max(3, reps // 2))
        del g, m, opt

        m = model(mode).eval()
        x = batch(mode, n)

        def infer():
            with torch.no_grad(), torch.autocast('cuda', dtype=amp or torch.float32, enabled=amp is not None):
                return m(x)
        rows[f'infer_eager_b{n}'] = median_ms(infer, reps)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            infer()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            infer()
        rows[f'infer_graphed_b{n}'] = median_ms(g.replay, reps)
        del g, m
    return rows


if cfg.get('graph_batches'):
    out['graph'] = graph_rows(cfg.get('graph_mode', 'bf16_cl'), cfg['graph_batches'])
print(json.dumps(out))
