#!/usr/bin/python3
"""Reference weight files for tests/io: torch.save checkpoints and hand-written safetensors.

Usage:
  weights.py <outDir>             writes the fixtures below into outDir
  weights.py --read <file>        reads a safetensors file by hand and prints its contents as JSON

Files in outDir:
  conv_net.pth, dtypes.pth, wrapped_state_dict.pth, wrapped_model.pth, deflated.pth   loadable checkpoints
  legacy.pth, list_top.pth, torchscript.pt                                            refused with a clear error
  malicious_*.pth                                     pickles naming dangerous globals (never executed here)
  crafted_*.pth                                       hand-built tensor records with bad sizes/offsets
  all.safetensors, nometa.safetensors                 safetensors written by hand (the format is trivial)
  expected/manifest.json + expected/<n>.bin           per file and key: dtype, shape and the raw row-major bytes
"""
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict

import torch

ST_DTYPES = {
    torch.float32: 'F32', torch.float64: 'F64', torch.float16: 'F16', torch.bfloat16: 'BF16',
    torch.int64: 'I64', torch.int32: 'I32', torch.uint8: 'U8', torch.bool: 'BOOL',
}
ST_TORCH = {v: k for k, v in ST_DTYPES.items()}
NAMES = {
    torch.float32: 'float32', torch.float64: 'float64', torch.float16: 'float16', torch.bfloat16: 'bfloat16',
    torch.int64: 'int64', torch.int32: 'int32', torch.uint8: 'uint8', torch.bool: 'bool',
}


def raw_bytes(t):
    """Row-major little-endian bytes of t in its own dtype."""
    t = t.detach().contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


class Expected:
    def __init__(self, out):
        self.dir = os.path.join(out, 'expected')
        os.makedirs(self.dir, exist_ok=True)
        self.manifest = {}
        self.n = 0

    def add(self, file, sd):
        entries = []
        for k, t in sd.items():
            name = f'{self.n}.bin'
            self.n += 1
            with open(os.path.join(self.dir, name), 'wb') as f:
                f.write(raw_bytes(t))
            entries.append({'key': k, 'dtype': NAMES[t.dtype], 'shape': list(t.shape), 'bin': name})
        self.manifest[file] = entries

    def close(self):
        with open(os.path.join(self.dir, 'manifest.json'), 'w') as f:
            json.dump(self.manifest, f, indent=1)


def conv_net_state():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1))
    net.train()
    net(torch.randn(2, 3, 5, 5))  # non-trivial running stats, num_batches_tracked = 1
    return net.state_dict()


def dtype_state():
    torch.manual_seed(1)
    base = torch.arange(12, dtype=torch.float32) * 0.5
    grid = torch.arange(20, dtype=torch.float64).reshape(4, 5)
    d = OrderedDict()
    d['f32'] = torch.tensor([1.5, -0.0, float('inf'), float('-inf'), float('nan'), 3.4e38, 1e-45], dtype=torch.float32)
    d['f64'] = torch.randn(2, 3, dtype=torch.float64)
    d['f16'] = torch.tensor([[0.1, -2.5], [65504.0, 6e-8]], dtype=torch.float16)
    d['bf16'] = torch.tensor([1.0, -3.140625, 1e30, 0.0078125], dtype=torch.bfloat16)
    d['i64'] = torch.tensor([0, -1, 2 ** 62 + 1, -(2 ** 63)], dtype=torch.int64)
    d['i32'] = torch.tensor([[2 ** 31 - 1, -(2 ** 31)], [7, -7]], dtype=torch.int32)
    d['u8'] = torch.tensor([0, 1, 128, 255], dtype=torch.uint8)
    d['bool'] = torch.tensor([True, False, True], dtype=torch.bool)
    d['transposed'] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()            # strides (1, 3)
    d['strided'] = grid[1:, ::2]                                                        # offset 5, strides (5, 2)
    d['shared_a'] = base[:6].view(2, 3)                                                 # one storage ...
    d['shared_b'] = base[4:]                                                            # ... overlapping, offset 4
    d['expanded'] = torch.tensor([1, 2], dtype=torch.int32).expand(3, 2)                # stride 0
    d['permuted'] = torch.arange(24, dtype=torch.int64).reshape(2, 3, 4).permute(2, 0, 1)
    d['scalar'] = torch.tensor(2.5, dtype=torch.float64)
    d['picked'] = base[3]                                                               # 0-d view, offset 3
    d['f16_t'] = torch.arange(6, dtype=torch.float16).reshape(2, 3).t()                 # 2-byte gather
    d['bool_t'] = (torch.arange(6) % 4 == 0).reshape(3, 2).t()                          # 1-byte gather
    d['empty'] = torch.zeros(0, 3, dtype=torch.float32)
    d['param'] = torch.nn.Parameter(torch.randn(3))
    d['10'] = torch.tensor([10], dtype=torch.int64)  # integer-like keys keep the file's order
    d['2'] = torch.tensor([2], dtype=torch.int64)
    return d


def torch_zip(path, archive, pkl, storages=(), extra=()):
    """A torch.save-style zip holding the given pickle bytes; nothing is unpickled or executed here."""
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        z.writestr(f'{archive}/data.pkl', pkl)
        for key, data in storages:
            z.writestr(f'{archive}/data/{key}', data)
        for name, data in extra:
            z.writestr(f'{archive}/{name}', data)
        z.writestr(f'{archive}/version', '3\n')


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def write_malicious(out):
    # Hand-assembled protocol-2 pickle: GLOBAL 'os system', the argument, TUPLE1, REDUCE, STOP.
    cmd = b'echo pwned'
    pkl = b'\x80\x02cos\nsystem\nX' + struct.pack('<I', len(cmd)) + cmd + b'\x85R.'
    torch_zip(os.path.join(out, 'malicious_os.pth'), 'malicious_os', pkl)
    # pickle.dumps only records the reference (posix.system); it runs nothing.
    torch_zip(os.path.join(out, 'malicious_posix.pth'), 'malicious_posix',
              pickle.dumps({'weight': Evil()}, protocol=2))
    # Protocol 4 STACK_GLOBAL builtins.eval.
    pkl = b'\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00' + b'\x8c\x08builtins\x8c\x04eval\x93' \
        + b'\x8c\x0c__import__()\x85R.'
    torch_zip(os.path.join(out, 'malicious_eval.pth'), 'malicious_eval', pkl)


class StorageRef:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class CraftedTensor:
    def __init__(self, *args):
        self.args = args

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class CraftPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return ('storage', obj.cls, obj.key, 'cpu', obj.numel)
        return None


def crafted(out, name, tensors, storages, extra=()):
    buf = io.BytesIO()
    CraftPickler(buf, protocol=2).dump(OrderedDict(
        (k, CraftedTensor(StorageRef(key, cls, numel), off, size, stride, False, OrderedDict()))
        for k, (key, cls, numel, off, size, stride) in tensors.items()))
    torch_zip(os.path.join(out, f'crafted_{name}.pth'), f'crafted_{name}', buf.getvalue(), storages, extra)


def write_crafted(out):
    f32 = struct.pack('<4f', 1, 2, 3, 4)
    F = torch.FloatStorage
    crafted(out, 'out_of_bounds', {'w': ('0', F, 4, 2, (3,), (1,))}, [('0', f32)])
    crafted(out, 'missing_storage', {'w': ('7', F, 4, 0, (4,), (1,))}, [('0', f32)])
    crafted(out, 'short_storage', {'w': ('0', F, 8, 0, (8,), (1,))}, [('0', f32)])
    crafted(out, 'negative_stride', {'w': ('0', F, 4, 3, (2,), (-1,))}, [('0', f32)])
    crafted(out, 'huge_expand', {'w': ('0', F, 4, 0, (1 << 20, 1 << 20), (0, 0))}, [('0', f32)])
    crafted(out, 'big_endian', {'w': ('0', F, 4, 0, (4,), (1,))}, [('0', f32)], [('byteorder', 'big')])
    crafted(out, 'little_endian', {'w': ('0', F, 4, 0, (2, 2), (2, 1))}, [('0', f32)], [('byteorder', 'little')])


def write_safetensors(path, tensors, metadata=None):
    """The safetensors format by hand: u64 header length, JSON header padded with spaces to 8 bytes, data."""
    header, chunks, offset = OrderedDict(), [], 0
    if metadata is not None:
        header['__metadata__'] = metadata
    for k, t in tensors.items():
        b = raw_bytes(t)
        header[k] = {'dtype': ST_DTYPES[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(',', ':'), ensure_ascii=False).encode('utf-8')
    h += b' ' * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(chunks))


def read_safetensors(path):
    """Strict hand reader: used by the tests to check files panseg writes."""
    data = open(path, 'rb').read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n].decode('utf-8'), object_pairs_hook=OrderedDict)
    body = data[8 + n:]
    metadata = header.pop('__metadata__', None)
    end = 0
    out = []
    for k, e in sorted(header.items(), key=lambda kv: kv[1]['data_offsets'][0]):
        b, stop = e['data_offsets']
        assert b == end, f'{k}: gap or overlap at {b} (expected {end})'
        end = stop
        dtype = ST_TORCH[e['dtype']]
        numel = math.prod(e['shape'])
        assert stop - b == numel * torch.tensor([], dtype=dtype).element_size(), k
        t = torch.frombuffer(bytearray(body[b:stop]), dtype=dtype).reshape(e['shape']) if numel \
            else torch.empty(e['shape'], dtype=dtype)
        vals = t.reshape(-1).tolist()
        vals = [v if not isinstance(v, float) or math.isfinite(v) else str(v) for v in vals]
        if e['dtype'] == 'I64':
            vals = [str(v) for v in vals]  # exact beyond 2**53
        out.append({'name': k, 'dtype': e['dtype'], 'shape': e['shape'], 'values': vals})
    assert end == len(body), 'data section has trailing bytes'
    assert list(header.keys()) == [t['name'] for t in out], 'header order differs from data order'
    print(json.dumps({'header_len': n, 'metadata': metadata, 'tensors': out}))


def main(out):
    exp = Expected(out)
    conv = conv_net_state()
    torch.save(conv, os.path.join(out, 'conv_net.pth'))
    exp.add('conv_net.pth', conv)
    dts = dtype_state()
    torch.save(dts, os.path.join(out, 'dtypes.pth'))
    exp.add('dtypes.pth', dts)
    torch.save({'epoch': 7, 'best': 0.5, 'names': ['a', 'b'], 'state_dict': conv,
                'optimizer': {'lr': 0.1, 'betas': (0.9, 0.999), 'nesterov': True, 'big': 2 ** 70, 'none': None}},
               os.path.join(out, 'wrapped_state_dict.pth'))
    torch.save({'model': conv, 'step': 2 ** 40}, os.path.join(out, 'wrapped_model.pth'))
    with zipfile.ZipFile(os.path.join(out, 'conv_net.pth')) as src, \
            zipfile.ZipFile(os.path.join(out, 'deflated.pth'), 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    torch.save(conv, os.path.join(out, 'legacy.pth'), _use_new_zipfile_serialization=False)
    torch.save([torch.ones(2)], os.path.join(out, 'list_top.pth'))
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, 'torchscript.pt'))
    write_malicious(out)
    write_crafted(out)

    torch.manual_seed(2)
    st = OrderedDict()
    st['f32'] = torch.tensor([[1.5, -0.0, float('inf')], [float('-inf'), float('nan'), 1e-45]], dtype=torch.float32)
    st['f64'] = torch.randn(3, dtype=torch.float64)
    st['f16'] = torch.tensor([0.1, 65504.0, -6e-8], dtype=torch.float16)
    st['bf16'] = torch.tensor([[1.0, -3.140625], [1e30, 0.0078125]], dtype=torch.bfloat16)
    st['i64'] = torch.tensor([2 ** 62 + 1, -(2 ** 63), 5], dtype=torch.int64)
    st['i32'] = torch.tensor([2 ** 31 - 1, -(2 ** 31)], dtype=torch.int32)
    st['u8'] = torch.tensor([[0, 255], [128, 7]], dtype=torch.uint8)
    st['bool'] = torch.tensor([True, False, False, True], dtype=torch.bool)
    st['scalar'] = torch.tensor(-1.25, dtype=torch.float32)
    st['empty'] = torch.zeros(2, 0, dtype=torch.float32)
    st['layer.0.weight'] = torch.randn(4, 3, 1, 1)
    write_safetensors(os.path.join(out, 'all.safetensors'), st, {'format': 'pt', 'note': 'h\u00e9llo'})
    exp.add('all.safetensors', st)
    small = OrderedDict([('b', torch.arange(3, dtype=torch.int32)), ('a', torch.ones(2, 2))])
    write_safetensors(os.path.join(out, 'nometa.safetensors'), small)
    exp.add('nometa.safetensors', small)
    exp.close()


if __name__ == '__main__':
    if sys.argv[1] == '--read':
        read_safetensors(sys.argv[2])
    else:
        main(sys.argv[1])
