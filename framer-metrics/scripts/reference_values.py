#!/usr/bin/env python3
"""Reference values for the framer-metrics oracle tests (numpy + scipy + Pillow).

A direct numpy port of BasicSR 1.4.2 (`basicsr/metrics/psnr_ssim.py`, `niqe.py`,
`basicsr/utils/matlab_functions.py`, Apache-2.0), computed in float64, used to produce the
Y-channel PSNR/SSIM and NIQE reference values hard-coded in `tests/oracle_pyiqa.rs`.

Usage: python3 reference_values.py <ResultsCalibra dir> <niqe_pris_params.npz>
"""
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import convolve
from scipy.special import gamma


def load(path):
    # pyiqa / torchvision convention: uint8 -> float32 / 255
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / np.float32(255.0)


def ycbcr_y255(rgb01):
    # BT.601 "MATLAB rgb2ycbcr" luma, unrounded, in [16, 235]
    r, g, b = [rgb01[..., i].astype(np.float64) for i in range(3)]
    return 65.481 * r + 128.553 * g + 24.966 * b + 16.0


def yiq_y255_rounded(rgb01):
    # pyiqa / MATLAB rgb2gray luma, evaluated in float32 in this exact order (as the Rust code
    # does), then rounded half-to-even like torch.round: rounding ties decide a few pixels.
    f = np.float32
    r, g, b = [rgb01[..., i].astype(f) for i in range(3)]
    y = (r * f(0.299) + g * f(0.587)) + b * f(0.114)
    return np.round(y * f(255.0)).astype(np.float64)


def crop(x, c):
    return x[c:-c, c:-c, ...] if c else x


def psnr_y(a, b, c=0):  # BasicSR calculate_psnr(test_y_channel=True)
    ya, yb = crop(ycbcr_y255(a), c), crop(ycbcr_y255(b), c)
    mse = np.mean((ya - yb) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def gauss_window():
    k = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    k /= k.sum()
    return np.outer(k, k)


def valid_filter(x, w):
    # 'valid' correlation (== cv2.filter2D(...)[5:-5, 5:-5])
    h, wd = x.shape
    out = np.zeros((h - 10, wd - 10))
    for i in range(11):
        for j in range(11):
            out += w[i, j] * x[i:i + h - 10, j:j + wd - 10]
    return out


def ssim_map_mean(x, y, clamp_cs):
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    w = gauss_window()
    mu1, mu2 = valid_filter(x, w), valid_filter(y, w)
    s1 = valid_filter(x * x, w) - mu1**2
    s2 = valid_filter(y * y, w) - mu2**2
    s12 = valid_filter(x * y, w) - mu1 * mu2
    cs = (2 * s12 + c2) / (s1 + s2 + c2)
    if clamp_cs:
        cs = np.maximum(cs, 0)
    return float(np.mean((2 * mu1 * mu2 + c1) / (mu1**2 + mu2**2 + c1) * cs))


def ssim_y(a, b, c=0):  # BasicSR calculate_ssim(test_y_channel=True)
    return ssim_map_mean(crop(ycbcr_y255(a), c), crop(ycbcr_y255(b), c), clamp_cs=False)


def ssim_yiq(a, b, c=0):  # pyiqa default 'ssim'
    return ssim_map_mean(crop(yiq_y255_rounded(a), c), crop(yiq_y255_rounded(b), c), clamp_cs=True)


# ---- NIQE (BasicSR niqe(), MATLAB imresize) ----
def cubic(x):
    ax = np.abs(x)
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1) + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def weights_indices(in_len, out_len, scale):
    kw = 4.0 / scale if scale < 1 else 4.0
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kw / 2)
    p = math.ceil(kw) + 2
    ind = left[:, None] + np.arange(p)[None, :]
    dist = u[:, None] - ind
    wts = scale * cubic(dist * scale) if scale < 1 else cubic(dist)
    wts = wts / wts.sum(1, keepdims=True)
    # MATLAB: out-of-range indices are mirrored (symmetric padding, 1-based)
    ind0 = ind - 1
    ind0 = np.where(ind0 < 0, -ind0 - 1, ind0)
    ind0 = np.where(ind0 >= in_len, 2 * in_len - ind0 - 1, ind0)
    return wts, ind0.astype(int)


def imresize_half(img):
    h, w = img.shape
    oh, ow = math.ceil(h * 0.5), math.ceil(w * 0.5)
    wh, ih = weights_indices(h, oh, 0.5)
    ww, iw = weights_indices(w, ow, 0.5)
    tmp = np.einsum("op,opw->ow", wh, img[ih])
    return np.einsum("op,hop->ho", ww, tmp[:, iw])


GAM = np.arange(0.2, 10.001, 0.001)
R_GAM = gamma(2 / GAM) ** 2 / (gamma(1 / GAM) * gamma(3 / GAM))


def aggd(block):
    block = block.flatten()
    with np.errstate(all="ignore"):
        ls = np.sqrt(np.mean(block[block < 0] ** 2))
        rs = np.sqrt(np.mean(block[block > 0] ** 2))
        gh = ls / rs
        rhat = np.mean(np.abs(block)) ** 2 / np.mean(block**2)
        rn = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
        a = GAM[np.argmin((R_GAM - rn) ** 2)]
        f = np.sqrt(gamma(1 / a) / gamma(3 / a))
    return a, ls * f, rs * f


def features(block):
    a, bl, br = aggd(block)
    feat = [a, (bl + br) / 2]
    for s in [[0, 1], [1, 0], [1, 1], [1, -1]]:
        a, bl, br = aggd(block * np.roll(block, s, axis=(0, 1)))
        feat += [a, (br - bl) * gamma(2 / a) / gamma(1 / a), bl, br]
    return feat


def niqe(gray255, mu_p, cov_p, win, bs=96):
    h, w = gray255.shape
    nh, nw = h // bs, w // bs
    img = gray255[: nh * bs, : nw * bs].astype(np.float64)
    dist = []
    for scale in (1, 2):
        mu = convolve(img, win, mode="nearest")
        sig = np.sqrt(np.abs(convolve(img * img, win, mode="nearest") - mu * mu))
        nrm = (img - mu) / (sig + 1)
        b = bs // scale
        dist.append(np.array([features(nrm[i * b:(i + 1) * b, j * b:(j + 1) * b]) for j in range(nw) for i in range(nh)]))
        if scale == 1:
            img = imresize_half(img / 255.0) * 255.0
    d = np.concatenate(dist, axis=1)
    mu_d = np.nanmean(d, axis=0)
    cov_d = np.cov(d[~np.isnan(d).any(axis=1)], rowvar=False)
    inv = np.linalg.pinv((cov_p + cov_d) / 2)
    diff = mu_p - mu_d
    return float(np.sqrt(diff @ inv @ diff.T).squeeze())


def main():
    root = Path(sys.argv[1])
    p = np.load(sys.argv[2])
    for name in ["I03", "I04", "I06", "I08", "I19"]:
        d = load(root / "dist_dir" / f"{name}.bmp")
        r = load(root / "ref_dir" / f"{name}.bmp")
        print(
            f"{name}: psnr_y={psnr_y(d, r):.6f} psnr_y_crop4={psnr_y(d, r, 4):.6f} "
            f"ssim={ssim_yiq(d, r):.6f} ssim_y={ssim_y(d, r):.6f} ssim_y_crop4={ssim_y(d, r, 4):.6f} "
            f"niqe={niqe(yiq_y255_rounded(d), p['mu_pris_param'], p['cov_pris_param'], p['gaussian_window']):.6f}"
        )


if __name__ == "__main__":
    main()
