#!/usr/bin/env python3
"""Writes the PyTorch checkpoint fixtures of tests/test_torch_checkpoint.cpp (tests/data/torch_ckpt/).

Run from the source root:  python3 tools/refgen/make_ckpt_fixtures.py [--out DIR] [--seed N]
(The fixtures test the file format, not numbers: their contents are fixed, and --seed, taken so that
every generator has the same command line, changes nothing.)

Uses the Python standard library only (pickle, zipfile, struct, json): PyTorch itself could not be
installed where this was written (the CPU wheel index was unreachable). The files reproduce the
byte layout of torch.save in PyTorch 2.x (torch/serialization.py _save, torch/_tensor.py
_reduce_ex_internal) exactly: a zip archive of `<name>/data.pkl` (pickle protocol 2, tensors as
torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()),
storages as persistent ids ('storage', torch.<T>Storage, key, 'cpu', numel)), `<name>/byteorder`,
`<name>/data/<key>` (raw little-endian bytes, STORED, 64-byte aligned through an "FB" extra field
as PyTorchStreamWriter pads them), `<name>/version` and `<name>/.data/serialization_id`. The same
pickler torch uses (CPython's) writes the pickles, through stand-in `torch` and `torch._utils`
modules that exist only in this process, so the opcodes are the ones torch writes.

Beside every good checkpoint `X.ckpt` goes `X.safetensors` with the values each tensor must have.

The malicious files under malicious/ are written WITHOUT ever being unpickled: their pickles are
either bytes written by hand or CPython's pickler recording a reference to a callable (pickling a
reference runs nothing). Each is named after the callable a reader must name when refusing it. Their
payloads would create /tmp/easel_pwned_fixture; the test checks that it never appears.
"""

import collections
import io
import json
import os
import pickle
import platform
import struct
import subprocess
import sys
import types
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refgen_args  # noqa: E402

OUT = None  # set by main from --out
PWNED = "/tmp/easel_pwned_fixture"

# --- stand-ins for the torch objects that torch.save pickles --------------------------------------

torch_mod = types.ModuleType("torch")
utils_mod = types.ModuleType("torch._utils")
torch_mod._utils = utils_mod
sys.modules.setdefault("torch", torch_mod)
sys.modules.setdefault("torch._utils", utils_mod)
assert sys.modules["torch"] is torch_mod, "run without the real torch imported"

# dtype name -> (storage class name, struct format, element size)
DTYPES = {
    "f32": ("FloatStorage", "f", 4, "F32"),
    "f16": ("HalfStorage", "e", 2, "F16"),
    "bf16": ("BFloat16Storage", None, 2, "BF16"),
    "f64": ("DoubleStorage", "d", 8, "F64"),
    "i64": ("LongStorage", "q", 8, "I64"),
    "i32": ("IntStorage", "i", 4, "I32"),
    "u8": ("ByteStorage", "B", 1, "U8"),
    "bool": ("BoolStorage", "?", 1, "BOOL"),
}
STORAGE_TYPES = {}
for _dt, (_cls, _fmt, _size, _st) in DTYPES.items():
    _t = type(_cls, (), {"__module__": "torch"})
    _t.__qualname__ = _cls
    setattr(torch_mod, _cls, _t)
    STORAGE_TYPES[_dt] = _t


def _stand_in(name):
    def f(*args):
        raise RuntimeError("stand-in, never called")

    f.__module__ = "torch._utils"
    f.__qualname__ = f.__name__ = name
    setattr(utils_mod, name, f)
    return f


rebuild_tensor_v2 = _stand_in("_rebuild_tensor_v2")
rebuild_parameter = _stand_in("_rebuild_parameter")


def pack(dtype, values):
    _, fmt, size, _ = DTYPES[dtype]
    if dtype == "bf16":  # the upper half of the f32 bits (values are chosen exact in bf16)
        return b"".join(struct.pack("<I", v)[2:] for v in (struct.unpack("<I", struct.pack("<f", x))[0] for x in values))
    return struct.pack("<%d%s" % (len(values), fmt), *values)


class Storage:
    def __init__(self, dtype, values):
        self.dtype, self.values = dtype, list(values)
        self.key = None


class Tensor:
    """A strided view of a Storage, pickled as torch pickles a plain tensor."""

    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)
        self.parameter = parameter

    def __reduce_ex__(self, protocol):
        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        if self.parameter:
            return (rebuild_parameter, (Tensor(self.storage, self.offset, self.size, self.stride), True, collections.OrderedDict()))
        return (rebuild_tensor_v2, args)

    def values(self):
        """The elements in C order."""
        out = []

        def walk(dim, at):
            if dim == len(self.size):
                out.append(self.storage.values[at])
                return
            for i in range(self.size[dim]):
                walk(dim + 1, at + i * self.stride[dim])

        walk(0, self.offset)
        return out


def contiguous(dtype, values, size):
    stride, acc = [], 1
    for s in reversed(size):
        stride.insert(0, acc)
        acc *= s
    assert acc == len(values)
    return Tensor(Storage(dtype, values), 0, size, stride)


class TorchPickler(pickle.Pickler):
    def __init__(self, f, storages, fix_imports=True):
        super().__init__(f, protocol=2, fix_imports=fix_imports)
        self.storages = storages

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            if obj.key is None:
                obj.key = str(len(self.storages))
                self.storages.append(obj)
            return ("storage", STORAGE_TYPES[obj.dtype], obj.key, "cpu", len(obj.values))
        return None


# --- the archive ----------------------------------------------------------------------------------


def write_archive(path, name, pickle_bytes, records):
    """records: [(record name, bytes)] after data.pkl, each aligned to 64 bytes like PyTorchStreamWriter."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        entries = [("data.pkl", pickle_bytes), ("byteorder", b"little")] + records
        entries += [("version", b"3\n"), (".data/serialization_id", b"1234567890123456789012345678901234567890")]
        for rec, data in entries:
            info = zipfile.ZipInfo(name + "/" + rec, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            header_end = z.fp.tell() + 30 + len(info.filename.encode())
            pad = (64 - (header_end + 4) % 64) % 64
            info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
            z.writestr(info, data)


def save(path, obj, name=None, fix_imports=True):
    """torch.save(obj, path) for our stand-ins (fix_imports=False keeps Python 3 module names)."""
    storages = []
    buf = io.BytesIO()
    TorchPickler(buf, storages, fix_imports).dump(obj)
    records = [("data/" + s.key, pack(s.dtype, s.values)) for s in storages]
    write_archive(path, name or os.path.splitext(os.path.basename(path))[0], buf.getvalue(), records)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, (dtype, size, values) in tensors.items():
        data = pack(dtype, values)
        header[name] = {"dtype": DTYPES[dtype][3], "shape": list(size), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def expected(state, prefix=""):
    out = {}
    for k, v in state.items():
        if isinstance(v, Tensor):
            out[prefix + k] = (v.storage.dtype, v.size, v.values())
        elif isinstance(v, dict):
            out.update(expected(v, prefix + k + "."))
    return out


# --- good checkpoints -----------------------------------------------------------------------------


def sd_like():
    """A Stable Diffusion style checkpoint: {epoch, global_step, state_dict: {...}}."""
    sd = collections.OrderedDict()
    sd["model.diffusion_model.input_blocks.0.0.weight"] = contiguous("f32", [i * 0.25 - 3 for i in range(2 * 3 * 2 * 2)], (2, 3, 2, 2))
    sd["model.diffusion_model.input_blocks.0.0.bias"] = contiguous("f16", [0.5, -1.0, 65504.0, 6.1e-05, 0.0], (5,))
    sd["first_stage_model.decoder.conv_out.weight"] = contiguous("bf16", [1.0, -2.0, 0.15625, 3.0e38, -0.0, 7.5], (2, 3))
    # A transposed view: the [3, 4] storage seen as [4, 3] with strides (1, 4).
    base = Storage("f32", [float(i) for i in range(12)])
    sd["model.diffusion_model.out.2.weight"] = Tensor(base, 0, (4, 3), (1, 4))
    # Two tensors over one storage (as after torch.chunk of a fused qkv weight), one of them offset.
    qkv = Storage("f32", [i / 8 for i in range(24)])
    sd["cond_stage_model.attn.q.weight"] = Tensor(qkv, 0, (2, 4), (4, 1))
    sd["cond_stage_model.attn.k.weight"] = Tensor(qkv, 8, (2, 4), (4, 1))
    sd["cond_stage_model.attn.v_cols"] = Tensor(qkv, 1, (3, 2), (8, 3))  # strided, offset
    sd["cond_stage_model.position_ids"] = contiguous("i64", [0, 1, 2, -5, 2**40], (1, 5))
    sd["model.alphas_cumprod"] = contiguous("f64", [0.999, 0.5, 1e-300], (3,))
    sd["model.num_steps"] = contiguous("i32", [1000], ())  # 0-dim
    sd["model.mask"] = contiguous("bool", [True, False, True], (3,))
    sd["model.pixels"] = contiguous("u8", [0, 127, 255, 3], (2, 2))
    sd["model.empty"] = Tensor(Storage("f32", []), 0, (0, 3), (3, 1))
    sd["model.broadcast"] = Tensor(Storage("f32", [1.5, -2.5]), 0, (3, 2), (0, 1))  # expanded (stride 0)
    sd["model.ema.decay"] = Tensor(Storage("f32", [0.9999]), 0, (), (), parameter=True)
    ck = collections.OrderedDict()
    ck["epoch"] = 6
    ck["global_step"] = 470000
    ck["pytorch-lightning_version"] = "1.4.2"
    ck["state_dict"] = sd
    ck["callbacks"] = {"note": "ignored"}
    return ck, expected(sd)


def plain():
    """A bare state dict (torch.save(model.state_dict())) with nested dicts."""
    sd = collections.OrderedDict()
    sd["encoder"] = collections.OrderedDict([("0.weight", contiguous("f16", [1.0, 2.0, 3.0, 4.0], (2, 2)))])
    sd["decoder"] = {"conv": {"bias": contiguous("f32", [0.125, -0.125], (2,))}}
    sd["step"] = 12
    return sd, expected(sd)


# --- malicious checkpoints (never unpickled) --------------------------------------------------------


class Call:
    """Pickles as callable(*args); pickling only records a reference to the callable."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


def u32(n):
    return struct.pack("<I", n)


def malicious():
    cmd = "touch " + PWNED
    files = {}
    # GLOBAL os.system + REDUCE at the top level, written byte by byte.
    c = cmd.encode()
    files["os.system.ckpt"] = b"\x80\x02cos\nsystem\nX" + u32(len(c)) + c + b"\x85R."
    # builtins.eval hidden inside a valid state dict, after a real tensor.
    sd = collections.OrderedDict()
    sd["w"] = contiguous("f32", [1.0, 2.0], (2,))
    sd["x"] = Call(eval, ("__import__('os').system(%r)" % cmd,))
    files["builtins.eval.pt"] = {"state_dict": sd}
    # subprocess.Popen as a nested value.
    files["subprocess.Popen.pth"] = {"state_dict": {"a": {"b": Call(subprocess.Popen, (["touch", PWNED],))}}}
    # posix.system through STACK_GLOBAL (what protocol 4 writes for os.system on Linux).
    files["posix.system.ckpt"] = ("proto4", Call(os.system, (cmd,)))
    # os.popen through the protocol 0 INST opcode.
    files["os.popen.ckpt"] = b"(X" + u32(len(c)) + c + b"ios\npopen\n."
    for name, obj in files.items():
        path = os.path.join(OUT, "malicious", name)
        archive = os.path.splitext(name)[0].replace(".", "_")
        if isinstance(obj, bytes):
            write_archive(path, archive, obj, [])
        elif isinstance(obj, tuple):
            write_archive(path, archive, pickle.dumps(obj[1], protocol=4), [])
        else:
            save(path, obj, archive, fix_imports=False)
    assert not os.path.exists(PWNED)
    return sorted(files)


def main():
    global OUT
    OUT = refgen_args.parse("torch_ckpt", __doc__).out
    os.makedirs(os.path.join(OUT, "malicious"), exist_ok=True)
    ck, exp = sd_like()
    save(os.path.join(OUT, "sd_like.ckpt"), ck)
    write_safetensors(os.path.join(OUT, "sd_like.safetensors"), exp)
    sd, exp = plain()
    save(os.path.join(OUT, "plain_state_dict.pt"), sd, "archive")
    write_safetensors(os.path.join(OUT, "plain_state_dict.safetensors"), exp)
    bad = malicious()
    info = {
        "generator": "tools/refgen/make_ckpt_fixtures.py",
        "python": platform.python_version(),
        "pickle_protocol": 2,
        "torch": "not used: stand-ins reproduce the torch.save layout of PyTorch 2.x (see the script's docstring)",
        "good": ["sd_like.ckpt", "plain_state_dict.pt"],
        "malicious": bad,
        "payload_marker": PWNED,
    }
    with open(os.path.join(OUT, "info.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
