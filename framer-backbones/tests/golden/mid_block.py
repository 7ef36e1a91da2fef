"""Reference for the U-Net mid block (numpy only), and the golden file it writes.

diffusers `UNetMidBlock2D` with `resnet_time_scale_shift="default"`, `output_scale_factor=1`:
ResnetBlock2D → Attention (group norm, single-head-per-`attention_head_dim` self-attention,
residual) → ResnetBlock2D. Widths: 8 channels, 2 norm groups, heads of 4, a 3×4 feature map,
`temb` of width 16.

Writes `mid_block.safetensors`: the weights under diffusers names and PyTorch layouts, plus
`input.x` `[2, 8, 3, 4]`, `input.temb` `[2, 16]` and `expected.output` `[2, 8, 3, 4]`.

    python3 mid_block.py
"""
import json
import struct

import numpy as np

B, C, HH, WW, T, G, HD = 2, 8, 3, 4, 16, 2, 4
rng = np.random.default_rng(20260128)


def p(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


w = {}
for r in ("resnets.0", "resnets.1"):
    w[f"{r}.norm1.weight"], w[f"{r}.norm1.bias"] = 1 + p(C, scale=0.2), p(C, scale=0.1)
    w[f"{r}.conv1.weight"], w[f"{r}.conv1.bias"] = p(C, C, 3, 3, scale=0.15), p(C, scale=0.1)
    w[f"{r}.time_emb_proj.weight"], w[f"{r}.time_emb_proj.bias"] = p(C, T), p(C, scale=0.1)
    w[f"{r}.norm2.weight"], w[f"{r}.norm2.bias"] = 1 + p(C, scale=0.2), p(C, scale=0.1)
    w[f"{r}.conv2.weight"], w[f"{r}.conv2.bias"] = p(C, C, 3, 3, scale=0.15), p(C, scale=0.1)
a = "attentions.0"
w[f"{a}.group_norm.weight"], w[f"{a}.group_norm.bias"] = 1 + p(C, scale=0.2), p(C, scale=0.1)
for n in ("to_q", "to_k", "to_v", "to_out.0"):
    w[f"{a}.{n}.weight"], w[f"{a}.{n}.bias"] = p(C, C), p(C, scale=0.1)
x_in = p(B, C, HH, WW, scale=1.0)
temb = p(B, T, scale=1.0)


def silu(x):
    return x / (1.0 + np.exp(-x))


def group_norm(x, name, eps=1e-5):
    b, c, h, wd = x.shape
    g = x.reshape(b, G, -1)
    g = (g - g.mean(-1, keepdims=True)) / np.sqrt(g.var(-1, keepdims=True) + eps)
    return g.reshape(b, c, h, wd) * w[name + ".weight"][None, :, None, None] + w[name + ".bias"][None, :, None, None]


def conv3x3(x, name):
    weight, bias = w[name + ".weight"], w[name + ".bias"]
    b, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((b, weight.shape[0], h, wd))
    for i in range(3):
        for j in range(3):
            out += np.einsum("bchw,oc->bohw", xp[:, :, i:i + h, j:j + wd], weight[:, :, i, j])
    return out + bias[None, :, None, None]


def lin(x, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def resnet(x, r):
    h = conv3x3(silu(group_norm(x, f"{r}.norm1")), f"{r}.conv1")
    h = h + lin(silu(temb), f"{r}.time_emb_proj")[:, :, None, None]
    h = conv3x3(silu(group_norm(h, f"{r}.norm2")), f"{r}.conv2")
    return x + h


def attention(x):
    b, c, h, wd = x.shape
    n = group_norm(x, f"{a}.group_norm").reshape(b, c, h * wd).transpose(0, 2, 1)
    heads = lambda t: t.reshape(b, h * wd, c // HD, HD).transpose(0, 2, 1, 3)
    q, k, v = heads(lin(n, f"{a}.to_q")), heads(lin(n, f"{a}.to_k")), heads(lin(n, f"{a}.to_v"))
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD)
    s = np.exp(s - s.max(-1, keepdims=True))
    o = ((s / s.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(b, h * wd, c)
    o = lin(o, f"{a}.to_out.0")
    return x + o.transpose(0, 2, 1).reshape(b, c, h, wd)


out = resnet(attention(resnet(x_in.astype(np.float64), "resnets.0")), "resnets.1")
tensors = dict(w)
tensors["input.x"], tensors["input.temb"], tensors["expected.output"] = x_in, temb, out.astype(np.float32)

header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open("mid_block.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for blob in blobs:
        f.write(blob)
print("wrote mid_block.safetensors; output[0, 0, 0] =", tensors["expected.output"][0, 0, 0])
