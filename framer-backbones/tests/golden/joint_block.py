"""Reference for one DiT4SR joint transformer block (numpy only), and the golden file it writes.

Follows `model_dit4sr/attention.py` (JointTransformerBlock, AttentionZero with JointAttnProcessor2_0
without text tokens, FeedForwardControl) and diffusers' AdaLayerNormZero / RMSNorm, as written:
`key = norm_k(key); key_control = norm_k(key)` (the control keys are the normalised image keys
normalised again, an apparent slip) and the feed-forward's `hidden + 1.2 * control`.

Writes `joint_block.safetensors` with the block's weights under diffusers names and PyTorch
layouts (Linear weights `[out, in]`), plus `input.hidden` `[1, 8, 8]`, `input.temb` `[1, 8]`,
`expected.output` `[1, 8, 8]` (the reference) and `expected.output_own_keys` (the same with
`norm_k` applied to each stream's own keys, the DiT's `fixed_control_norm_k`); 2 heads of 4, a
2×2 token grid per stream.

    python3 joint_block.py
"""
import json
import struct

import numpy as np

B, N, D, H = 1, 4, 8, 2
GRID = (2, 2)
HD = D // H
rng = np.random.default_rng(20260127)


def p(*shape, scale=0.4):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


w = {
    "norm1.linear.weight": p(6 * D, D), "norm1.linear.bias": p(6 * D, scale=0.1),
    "attn.to_q.weight": p(D, D), "attn.to_q.bias": p(D, scale=0.1),
    "attn.to_k.weight": p(D, D), "attn.to_k.bias": p(D, scale=0.1),
    "attn.to_v.weight": p(D, D), "attn.to_v.bias": p(D, scale=0.1),
    "attn.to_out.0.weight": p(D, D), "attn.to_out.0.bias": p(D, scale=0.1),
    "attn.to_q_control.weight": p(D, D), "attn.to_q_control.bias": p(D, scale=0.1),
    "attn.to_k_control.weight": p(D, D), "attn.to_k_control.bias": p(D, scale=0.1),
    "attn.to_v_control.weight": p(D, D), "attn.to_v_control.bias": p(D, scale=0.1),
    "attn.to_out_control.weight": p(D, D), "attn.to_out_control.bias": p(D, scale=0.1),
    "attn.norm_q.weight": (1.0 + p(HD, scale=0.2)), "attn.norm_k.weight": (1.0 + p(HD, scale=0.2)),
    "ff.net.0.proj.weight": p(4 * D, D), "ff.net.0.proj.bias": p(4 * D, scale=0.1),
    "ff.net.2.weight": p(D, 4 * D), "ff.net.2.bias": p(D, scale=0.1),
    "ff.control_conv.weight": p(4 * D, 1, 3, 3), "ff.control_conv.bias": p(4 * D, scale=0.1),
}
hidden = p(B, 2 * N, D, scale=1.0)
temb = p(B, D, scale=1.0)


def lin(x, name):
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def silu(x):
    return x / (1.0 + np.exp(-x))


def layer_norm(x, eps=1e-6):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps)


def rms(x, g, eps=1e-6):
    return x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps) * g


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def heads(x):  # [B, n, D] -> [B, H, n, HD]
    return x.reshape(x.shape[0], x.shape[1], H, HD).transpose(0, 2, 1, 3)


def depthwise3x3(x, weight, bias):  # x [B, C, h, w], weight [C, 1, 3, 3]
    b, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros_like(x)
    for i in range(3):
        for j in range(3):
            out += xp[:, :, i:i + h, j:j + wd] * weight[None, :, 0, i, j, None, None]
    return out + bias[None, :, None, None]


def block(x, temb, own_keys=False):
    emb = lin(silu(temb), "norm1.linear")
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = np.split(emb, 6, axis=1)
    h = layer_norm(x) * (1 + scale_msa[:, None]) + shift_msa[:, None]
    xs, cs = h[:, :N], h[:, N:]
    q, k, v = heads(lin(xs, "attn.to_q")), heads(lin(xs, "attn.to_k")), heads(lin(xs, "attn.to_v"))
    qc = heads(lin(lin(cs, "attn.to_q"), "attn.to_q_control"))
    kc = heads(lin(lin(cs, "attn.to_k"), "attn.to_k_control"))
    vc = heads(lin(lin(cs, "attn.to_v"), "attn.to_v_control"))
    q = rms(np.concatenate([q, qc], 2), w["attn.norm_q.weight"])
    if own_keys:
        k = rms(np.concatenate([k, kc], 2), w["attn.norm_k.weight"])
    else:
        k = rms(k, w["attn.norm_k.weight"])
        k = np.concatenate([k, rms(k, w["attn.norm_k.weight"])], 2)
    v = np.concatenate([v, vc], 2)
    s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(HD)
    s = np.exp(s - s.max(-1, keepdims=True))
    a = (s / s.sum(-1, keepdims=True)) @ v
    a = a.transpose(0, 2, 1, 3).reshape(B, 2 * N, D)
    out = np.concatenate([lin(a[:, :N], "attn.to_out.0"), lin(a[:, N:] + cs, "attn.to_out_control")], 1)
    x = x + gate_msa[:, None] * out
    h = layer_norm(x) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
    u = gelu_tanh(lin(h, "ff.net.0.proj"))
    ux, uc = u[:, :N], u[:, N:]
    grid = uc.transpose(0, 2, 1).reshape(B, 4 * D, *GRID)
    conv = depthwise3x3(grid, w["ff.control_conv.weight"], w["ff.control_conv.bias"])
    conv = conv.reshape(B, 4 * D, N).transpose(0, 2, 1)
    ff = lin(np.concatenate([ux + 1.2 * conv, uc], 1), "ff.net.2")
    return x + gate_mlp[:, None] * ff


tensors = dict(w)
tensors["input.hidden"] = hidden
tensors["input.temb"] = temb
tensors["expected.output"] = block(hidden.astype(np.float64), temb.astype(np.float64)).astype(np.float32)
tensors["expected.output_own_keys"] = block(
    hidden.astype(np.float64), temb.astype(np.float64), own_keys=True
).astype(np.float32)

header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
with open("joint_block.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(text)))
    f.write(text)
    for blob in blobs:
        f.write(blob)
print("wrote joint_block.safetensors; output[0, 0, :4] =", tensors["expected.output"][0, 0, :4])
