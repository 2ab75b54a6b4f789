"""PyTorch training throughput on a panseg `folder` dataset, for bench/train.ts.

usage: /usr/bin/python3 bench/pytorch_train.py '<json>'
json: {"root": dir, "encoder": "resnet18", "classes": 6, "crop": 128, "batch": 8, "steps": 20,
       "threads": 2, "workers": 1, "precision": "fp32"|"bf16", "channels_last": bool}
The recipe mirrors panseg's: decode PNGs with PIL, random scale 0.75-1.5, pad/crop to `crop`, flip,
ImageNet normalization, in a DataLoader with worker processes; AdamW; cross-entropy with ignore 255.
Prints {"img_per_s": float, "steps": int} measured after 3 warm-up steps.
"""
import json
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
import pan_model  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.get('threads', 2))
torch.manual_seed(0)
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


class Folder(torch.utils.data.Dataset):
    def __init__(self, root, crop):
        self.root, self.crop = root, crop
        self.ids = sorted(os.path.splitext(f)[0] for f in os.listdir(os.path.join(root, 'images')))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        img = Image.open(os.path.join(self.root, 'images', self.ids[i] + '.png')).convert('RGB')
        mask = Image.open(os.path.join(self.root, 'masks', self.ids[i] + '.png'))
        s = random.uniform(0.75, 1.5)
        w, h = img.size
        nw, nh = max(1, int(w * s + 0.5)), max(1, int(h * s + 0.5))
        img, mask = img.resize((nw, nh), Image.BILINEAR), mask.resize((nw, nh), Image.NEAREST)
        x = (np.asarray(img, np.float32) / 255 - MEAN) / STD
        y = np.asarray(mask, np.int64)
        c = self.crop
        ph, pw = max(0, c - nh), max(0, c - nw)
        x = np.pad(x, ((0, ph), (0, pw), (0, 0)))
        y = np.pad(y, ((0, ph), (0, pw)), constant_values=255)
        top, left = random.randint(0, x.shape[0] - c), random.randint(0, x.shape[1] - c)
        x, y = x[top:top + c, left:left + c], y[top:top + c, left:left + c]
        if random.random() < 0.5:
            x, y = x[:, ::-1], y[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))), torch.from_numpy(np.ascontiguousarray(y))


ds = Folder(os.path.join(cfg['root'], 'train'), cfg.get('crop', 128))
loader = torch.utils.data.DataLoader(ds, batch_size=cfg.get('batch', 8), shuffle=True, drop_last=True,
                                     num_workers=cfg.get('workers', 1), persistent_workers=cfg.get('workers', 1) > 0)
model = pan_model.PAN(encoder_name=cfg.get('encoder', 'resnet18'), classes=cfg.get('classes', 6))
cl = cfg.get('channels_last', True)
if cl:
    model = model.to(memory_format=torch.channels_last)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
bf16 = cfg.get('precision', 'fp32') == 'bf16'
steps, warm = cfg.get('steps', 20), 3
done, t0 = 0, None
while done < steps + warm:
    for x, y in loader:
        if done == warm:
            t0 = time.perf_counter()
        if cl:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        torch.nn.functional.cross_entropy(logits.float(), y, ignore_index=255).backward()
        opt.step()
        done += 1
        if done >= steps + warm:
            break
elapsed = time.perf_counter() - t0
print(json.dumps({'img_per_s': steps * cfg.get('batch', 8) / elapsed, 'steps': steps}))
