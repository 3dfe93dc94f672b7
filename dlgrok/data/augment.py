"""CIFAR-10 training augmentations (App. G.2): random crop, flip, torchvision's RandAugment(), normalisation.

Every function acts on one HWC image, so vmap gives each image (and each model of a cohort) its own key.
RandAugment reproduces torchvision's ops on PIL images pixel for pixel: pixels are float32 integers in [0, 255],
the geometric ops are one nearest-neighbour gather with Pillow's fixed-point source pixels, and the colour ops
follow Pillow's arithmetic (truncating float32 blends, float32 SMOOTH filter, integer grayscale and LUTs). As
XLA fuses multiply-adds (FMA) and divides inexactly, float products are made exact first (`times`) and divisions
are done in integers. The op, sign and key may be traced; the magnitude bin is static.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
       "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
BINS = 31  # torchvision's num_magnitude_bins


def normalize(x):
  """Per-channel (x - MEAN) / STD of float images in [0, 1], channels last."""
  return (x - jnp.asarray(MEAN, x.dtype)) / jnp.asarray(STD, x.dtype)


def crop(img, dy, dx, pad=4):
  """The image-sized window at offsets (dy, dx), each in 0..2*pad, of the image zero-padded by `pad`."""
  padded = jnp.pad(img, ((pad, pad), (pad, pad), (0, 0)))
  return lax.dynamic_slice(padded, (dy, dx, 0), img.shape)


def random_crop(key, img, pad=4):
  dy, dx = jax.random.randint(key, (2,), 0, 2 * pad + 1)
  return crop(img, dy, dx, pad)


def flip(img):
  return img[:, ::-1]


def random_flip(key, img):
  return jnp.where(jax.random.bernoulli(key), flip(img), img)


def linspace(start, end, i, bins=BINS):
  """torch.linspace(start, end, bins)[i] as torch computes it in float32, returned as a Python float."""
  f = np.float32
  step = (f(end) - f(start)) / f(bins - 1)
  return float(f(start) + step * f(i) if i < bins // 2 else f(end) - step * f(bins - 1 - i))


def affine_matrix(center, angle=0.0, translate=(0, 0), shear=(0.0, 0.0)):
  """torchvision's inverse affine matrix (scale 1, angles in degrees) for PIL: output pixel -> input pixel."""
  rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
  a = math.cos(rot - sy) / math.cos(sy)
  b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
  c = math.sin(rot - sy) / math.cos(sy)
  d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
  m = [d, -b, 0.0, -c, a, 0.0]
  (cx, cy), (tx, ty) = center, translate
  m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty)
  m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty)
  m[2] += cx
  m[5] += cy
  return m


def rotate_matrix(angle, w, h):
  """PIL's Image.rotate(angle) matrix about the centre (w/2, h/2)."""
  t = -math.radians(angle % 360.0)
  m = [round(math.cos(t), 15), round(math.sin(t), 15), 0.0, round(-math.sin(t), 15), round(math.cos(t), 15), 0.0]
  cx, cy = w / 2, h / 2
  m[2], m[5] = m[0] * -cx + m[1] * -cy + m[2], m[3] * -cx + m[4] * -cy + m[5]
  m[2] += cx
  m[5] += cy
  return m


def source_index(m, h, w):
  """Flat source pixel of each output pixel of PIL's NEAREST Image.transform(AFFINE, m); h*w where it fills."""
  y, x = np.mgrid[:h, :w]
  if m[1] == 0 and m[3] == 0:  # Pillow's scaling path, in floating point
    xs, ys = np.floor(m[2] + m[0] * (x + 0.5)), np.floor(m[5] + m[4] * (y + 0.5))
  else:  # Pillow's 16.16 fixed-point path
    fix = lambda v: math.floor(v * 65536.0 + 0.5)
    a0, a1, a3, a4 = fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])
    a2, a5 = fix(m[2] + m[0] * 0.5 + m[1] * 0.5), fix(m[5] + m[3] * 0.5 + m[4] * 0.5)
    xs, ys = (a2 + a0 * x + a1 * y) >> 16, (a5 + a3 * x + a4 * y) >> 16
  inside = (xs >= 0) & (xs < w) & (ys >= 0) & (ys < h)
  return np.where(inside, ys * w + xs, h * w).astype(np.int32).ravel()


def split(c):
  """float32 c as hi + lo with 15 and 9 significant bits: their products with pixel values are exact."""
  c = np.float32(c)
  hi = (c.view(np.uint32) & np.uint32(0xFFFFFE00)).view(np.float32)
  return hi, c - hi


@functools.lru_cache(maxsize=None)
def tables(h, w, magnitude):
  """Static constants of the ops at a magnitude bin: source indices (14, 2, h*w) by op and sign (+, -), etc."""
  shear, rotate, enhance = linspace(0, 0.3, magnitude), linspace(0, 30, magnitude), linspace(0, 0.9, magnitude)
  tx, ty = linspace(0, 150 / 331 * w, magnitude), linspace(0, 150 / 331 * h, magnitude)
  index = np.tile(np.arange(h * w, dtype=np.int32), (len(OPS), 2, 1))
  for j, s in enumerate((1.0, -1.0)):
    deg = math.degrees(math.atan(s * shear))
    index[1, j] = source_index(affine_matrix((0, 0), shear=(deg, 0.0)), h, w)
    index[2, j] = source_index(affine_matrix((0, 0), shear=(0.0, deg)), h, w)
    index[3, j] = source_index(affine_matrix((w * 0.5, h * 0.5), translate=(int(s * tx), 0)), h, w)
    index[4, j] = source_index(affine_matrix((w * 0.5, h * 0.5), translate=(0, int(s * ty))), h, w)
    index[5, j] = source_index(rotate_matrix(s * rotate, w, h), h, w)
  factor = np.stack([split(1.0 + enhance), split(1.0 - enhance)])  # (sign, hi/lo)
  return {"index": index, "factor": factor, "bits": 8 - round(magnitude / ((BINS - 1) / 4)),
          "threshold": linspace(255, 0, magnitude)}


@functools.lru_cache(maxsize=None)
def autocontrast_misses():
  """Sorted keys lo<<16 | hi<<8 | v where PIL's float64 LUT int(v*scale + offset) is one below the exact floor.

  Only where (v - lo) * 255 / (hi - lo) is an integer can rounding error (~1e-13) cross it.
  """
  keys = []
  for d in range(1, 256):
    g = math.gcd(d, 255)
    k = np.arange(g + 1) * (d // g)
    lo = np.arange(256 - d)[:, None]
    v = lo + k
    scale = 255.0 / d
    got, want = np.trunc(v * scale + -lo * scale), k * 255 // d
    assert np.all((got == want) | (got == want - 1))
    keys.append(((lo << 16) | ((lo + d) << 8) | v)[got < want])
  keys = np.sort(np.concatenate(keys)).astype(np.int32)
  counts = np.unique(keys >> 8, return_counts=True)[1]
  return keys, int(counts.max())


def times(x, c):
  """float32 x * c for c = split(c), rounded once even where XLA fuses the multiply into a following add (FMA)."""
  return x * c[0] + x * c[1]


def blend(a, b, f):
  """PIL's Image.blend(a, b, f): float32 a + f * (b - a), truncated and clipped to [0, 255]."""
  return jnp.clip(jnp.floor(a + times(b - a, f)), 0, 255)


def gray(x):
  """PIL's RGB -> L conversion (ITU-R 601-2 in 16.16 fixed point), shape (H, W, 1)."""
  v = x.astype(jnp.int32)
  return ((v[..., :1] * 19595 + v[..., 1:2] * 38470 + v[..., 2:] * 7471 + 0x8000) >> 16).astype(x.dtype)


def contrast(x, f):
  l = gray(x).astype(jnp.int32)
  n = l.size
  mean = (2 * l.sum() + n) // (2 * n)  # int(mean + 0.5)
  return blend(mean.astype(x.dtype), x, f)


def smooth(x):
  """PIL's ImageFilter.SMOOTH: 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 in float32, border left as is."""
  p1, p5 = times(x, split(np.float32(1) / np.float32(13))), times(x, split(np.float32(5) / np.float32(13)))
  up, down = jnp.roll(p1, -1, 0), jnp.roll(p1, 1, 0)  # rows y+1 and y-1 (wrapped rows land on the border)
  row = lambda r, mid: (jnp.roll(r, 1, 1) + mid) + jnp.roll(r, -1, 1)
  s = ((0.5 + row(up, up)) + row(p1, p5)) + row(down, down)
  inner = np.zeros(x.shape[:2] + (1,), bool)
  inner[1:-1, 1:-1] = True
  return jnp.where(inner, jnp.floor(jnp.clip(s, 0, 255)), x)


def autocontrast(x):
  """PIL's ImageOps.autocontrast per channel, with its float64 LUT's rounding reproduced."""
  v = x.astype(jnp.int32)
  lo, hi = v.min((0, 1)), v.max((0, 1))
  d = hi - lo
  out = (v - lo) * 255 // jnp.maximum(d, 1)  # in integers: XLA's float division is not correctly rounded
  keys, most = autocontrast_misses()
  keys = jnp.asarray(keys)
  pair = (lo << 16) | (hi << 8)
  at = jnp.minimum(jnp.searchsorted(keys, pair)[:, None] + jnp.arange(most), len(keys) - 1)
  hit = keys[at]
  miss = jnp.where(hit >> 8 == pair[:, None] >> 8, hit & 255, -1)  # (C, most)
  short = functools.reduce(jnp.logical_or, [v == miss[:, i] for i in range(most)])  # faster than any(-1)
  return jnp.where(d > 0, out - short, v).astype(x.dtype)


def equalize(x):
  """PIL's ImageOps.equalize per channel."""
  h, w, c = x.shape
  v = x.astype(jnp.int32).reshape(h * w, c)
  hist = jnp.zeros((c, 256), jnp.int32).at[jnp.arange(c), v].add(1)
  below = jnp.cumsum(hist, 1) - hist
  step = (h * w - hist[jnp.arange(c), v.max(0)]) // 255
  lut = jnp.minimum((step[:, None] // 2 + below) // jnp.maximum(step, 1)[:, None], 255)
  out = jnp.take_along_axis(lut, v.T, 1).T
  return jnp.where(step > 0, out, v).reshape(h, w, c).astype(x.dtype)


def colour_ops(t):
  """One function (x, sign index) per op for lax.switch; geometric ops are done before, by the gather."""
  f = lambda neg: jnp.asarray(t["factor"])[neg]
  same = lambda x, neg: x
  mask = -(1 << (8 - t["bits"]))
  return (same, same, same, same, same, same,
          lambda x, neg: blend(jnp.zeros_like(x), x, f(neg)),
          lambda x, neg: blend(gray(x), x, f(neg)),
          lambda x, neg: contrast(x, f(neg)),
          lambda x, neg: blend(smooth(x), x, f(neg)),
          lambda x, neg: (x.astype(jnp.int32) & mask).astype(x.dtype),
          lambda x, neg: jnp.where(x < t["threshold"], x, 255 - x),
          lambda x, neg: autocontrast(x),
          lambda x, neg: equalize(x))


def apply_op(img, op, sign=1.0, magnitude=9):
  """RandAugment op OPS[op] (op may be traced) at a magnitude bin, its sign (+-1) used by the signed ops.

  img: (H, W, C) pixel values in [0, 255]; returns float32 integers in [0, 255].
  """
  x = jnp.asarray(img, jnp.float32)
  h, w, c = x.shape
  t = tables(h, w, magnitude)
  neg = (jnp.asarray(sign) < 0).astype(jnp.int32)
  flat = jnp.concatenate([x.reshape(h * w, c), jnp.zeros((1, c), x.dtype)])
  x = flat[jnp.asarray(t["index"])[op, neg]].reshape(h, w, c)
  return lax.switch(op, colour_ops(t), x, neg)


def rand_augment(key, img, num_ops=2, magnitude=9):
  """torchvision's RandAugment(num_ops, magnitude): uniform ops with random signs, applied in turn."""
  k_op, k_sign = jax.random.split(key)
  ops = jax.random.randint(k_op, (num_ops,), 0, len(OPS))
  signs = jnp.where(jax.random.bernoulli(k_sign, shape=(num_ops,)), -1.0, 1.0)
  step = lambda x, op_sign: (apply_op(x, *op_sign, magnitude), None)
  return lax.scan(step, jnp.asarray(img, jnp.float32), (ops, signs))[0]


def train_image(key, img):
  """One uint8 (H, W, 3) image: crop, flip, RandAugment, /255, normalise; float32."""
  k_crop, k_flip, k_aug = jax.random.split(key, 3)
  x = random_flip(k_flip, random_crop(k_crop, jnp.asarray(img, jnp.float32)))
  return normalize(rand_augment(k_aug, x) / 255.0)


def train_batch(key, imgs):
  """train_image over a uint8 batch (N, H, W, 3), one key per image."""
  return jax.vmap(train_image)(jax.random.split(key, imgs.shape[0]), imgs)


def eval_batch(imgs):
  return normalize(jnp.asarray(imgs, jnp.float32) / 255.0)
