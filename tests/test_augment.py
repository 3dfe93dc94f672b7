import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from dlgrok.data import augment as A

RNG = np.random.default_rng(0)
UNIFORM = RNG.integers(0, 256, (32, 32, 3), dtype=np.uint8)
DULL = RNG.integers(40, 140, (32, 32, 3), dtype=np.uint8)  # low contrast: AutoContrast stretches it
RAMP = (np.add.outer(np.arange(32), np.arange(32))[..., None] * np.array([4, 2, 1]) % 256).astype(np.uint8)
TOP = RNG.integers(0, 200, (32, 32, 3), dtype=np.uint8)
TOP[0, 0] = 255  # Equalize's LUT reaches 256 at the lone top pixel; Pillow clips it to 255
MORE = [RNG.integers(lo, lo + 100, (32, 32, 3), dtype=np.uint8) for lo in RNG.integers(0, 156, 28)]
IMAGES = np.stack([UNIFORM, DULL, RAMP, TOP] + MORE)  # 32 images: enough to meet Pillow's rounding edge cases

ops = jax.jit(jax.vmap(A.apply_op, in_axes=(0, None, None)))
one_op = lambda img, op, sign=1.0: np.asarray(ops(np.broadcast_to(img, IMAGES.shape), op, sign))[0]  # no recompile


def tv_matrix(center, translate=(0, 0), shear=(0.0, 0.0)):
  """torchvision.transforms.functional._get_inverse_affine_matrix at angle 0, scale 1 (its PIL input matrix)."""
  sx, sy = math.radians(shear[0]), math.radians(shear[1])
  a = math.cos(-sy) / math.cos(sy)
  b = -math.cos(-sy) * math.tan(sx) / math.cos(sy)
  c = math.sin(-sy) / math.cos(sy)
  d = -math.sin(-sy) * math.tan(sx) / math.cos(sy) + 1.0
  (cx, cy), (tx, ty) = center, translate
  return [d, -b, d * (-cx - tx) - b * (-cy - ty) + cx, -c, a, -c * (-cx - tx) + a * (-cy - ty) + cy]


def pillow(img, name, sign):
  """torchvision's _apply_op on a PIL image at RandAugment's default magnitude (bin 9 of 31)."""
  im = Image.fromarray(img)
  fill = {"fillcolor": (0, 0, 0)}
  if name in ("ShearX", "ShearY"):
    deg = math.degrees(math.atan(sign * 0.3 * 9 / 30))
    m = tv_matrix((0, 0), shear=(deg, 0.0) if name == "ShearX" else (0.0, deg))
    return im.transform(im.size, Image.AFFINE, m, Image.NEAREST, **fill)
  if name in ("TranslateX", "TranslateY"):
    t = int(sign * 150 / 331 * 32 * 9 / 30)
    m = tv_matrix((16.0, 16.0), translate=(t, 0) if name == "TranslateX" else (0, t))
    return im.transform(im.size, Image.AFFINE, m, Image.NEAREST, **fill)
  if name == "Rotate":
    return im.rotate(sign * 9.0, Image.NEAREST, **fill)
  if name in ("Brightness", "Color", "Contrast", "Sharpness"):
    return getattr(ImageEnhance, name)(im).enhance(1.0 + sign * 0.9 * 9 / 30)
  return {"Identity": lambda: im, "Posterize": lambda: ImageOps.posterize(im, 8 - round(9 / 7.5)),
          "Solarize": lambda: ImageOps.solarize(im, 255 * (1 - 9 / 30)),
          "AutoContrast": lambda: ImageOps.autocontrast(im), "Equalize": lambda: ImageOps.equalize(im)}[name]()


def test_crop_and_flip():
  img = RNG.integers(1, 256, (32, 32, 3), dtype=np.uint8)
  assert np.array_equal(A.crop(img, 4, 4), img)
  top_left = np.asarray(A.crop(img, 0, 0))
  assert np.all(top_left[:4] == 0) and np.all(top_left[:, :4] == 0) and np.array_equal(top_left[4:, 4:], img[:28, :28])
  corner = np.asarray(A.crop(img, 8, 1))
  assert np.array_equal(corner[:28, 3:], img[4:, :29]) and np.all(corner[28:] == 0) and np.all(corner[:, :3] == 0)
  assert np.array_equal(A.flip(img), img[:, ::-1]) and np.asarray(A.flip(img))[5, 0, 1] == img[5, 31, 1]

  crops = jax.vmap(A.random_crop, in_axes=(0, None))(jax.random.split(jax.random.key(0), 40), img)
  allowed = {np.asarray(A.crop(img, dy, dx)).tobytes(): (dy, dx) for dy in range(9) for dx in range(9)}
  seen = {allowed[np.asarray(c).tobytes()] for c in crops}  # KeyError if not an allowed window
  assert len(seen) > 20
  flips = jax.vmap(A.random_flip, in_axes=(0, None))(jax.random.split(jax.random.key(1), 40), img)
  is_flipped = [np.array_equal(f, img[:, ::-1]) for f in flips]
  assert all(f or np.array_equal(g, img) for f, g in zip(is_flipped, flips)) and 8 < sum(is_flipped) < 32


@pytest.mark.parametrize("name", A.OPS)
def test_op_matches_pillow(name):
  """Every pixel equals torchvision's op on the PIL image (Pillow 13, NEAREST, fill 0), for both signs."""
  for sign in (1.0, -1.0):
    got = np.asarray(ops(IMAGES, A.OPS.index(name), sign))
    want = np.stack([np.asarray(pillow(img, name, sign)) for img in IMAGES])
    assert got.dtype == np.float32 and np.array_equal(got, np.round(got))
    assert np.sum(got != want) == 0, (name, sign, np.argwhere(got != want)[:5])
    if name != "Identity":
      assert not np.array_equal(want[:2], IMAGES[:2])  # the op did something


def test_autocontrast_keeps_pillows_float64_rounding():
  """Pillow's LUT int(v * 255/(hi-lo) - lo * 255/(hi-lo)) falls one short of exact integers for some (lo, hi)."""
  img = np.zeros((32, 32, 3), np.uint8)
  img[..., 0] = np.arange(1024).reshape(32, 32) % 26  # lo 0, hi 25: Pillow maps 25 to 254, not 255
  img[..., 1] = 105 - np.arange(1024).reshape(32, 32) % 106  # 0..105: 21 -> 50 (exactly 51)
  img[..., 2] = 7  # a single value: unchanged
  want = np.asarray(ImageOps.autocontrast(Image.fromarray(img)))
  assert want[..., 0].max() == 254 and want[img[..., 1] == 21][0, 1] == 50 and np.all(want[..., 2] == 7)
  assert np.array_equal(one_op(img, A.OPS.index("AutoContrast")), want)


def test_rand_augment_draws_ops_and_signs_uniformly():
  """With one op, each result is one of the 23 op/sign outcomes; 300 keys meet them about as often as expected."""
  img = DULL.copy()
  img[0, 0] = 200  # so that Solarize changes it too
  table = {}
  for i in range(14):
    for s in (1.0, -1.0):
      table.setdefault(one_op(img, i, s).tobytes(), (A.OPS[i], s))
  assert len(table) == 23  # 9 signed ops twice, 5 unsigned ones once
  aug = jax.jit(jax.vmap(lambda k: A.rand_augment(k, img, num_ops=1)))
  got = [table[np.asarray(x).tobytes()] for x in aug(jax.random.split(jax.random.key(5), 300))]
  signed = [s for name, s in got if 1 <= A.OPS.index(name) <= 9]
  assert len(set(got)) >= 21 and 0.5 < len(signed) / 300 < 0.78 and 0.35 < np.mean(np.array(signed) > 0) < 0.65


def test_magnitudes_at_bin_9():
  t = A.tables(32, 32, 9)
  assert t["bits"] == 7 and t["threshold"] == 178.5
  assert np.float32(t["factor"][0].sum()) == np.float32(1.27) and np.float32(t["factor"][1].sum()) == np.float32(0.73)
  shift = t["index"][A.OPS.index("TranslateX"), 0].reshape(32, 32)
  assert np.array_equal(shift[:, 4:], np.arange(1024).reshape(32, 32)[:, :28]) and np.all(shift[:, :4] == 1024)


def test_train_and_eval_batches():
  imgs = jnp.asarray(IMAGES[:4])
  train = jax.jit(A.train_batch)
  out = train(jax.random.key(3), imgs)
  assert out.shape == (4, 32, 32, 3) and out.dtype == jnp.float32
  lo, hi = (0 - np.array(A.MEAN)) / A.STD, (1 - np.array(A.MEAN)) / A.STD
  assert np.all(out >= lo - 1e-5) and np.all(out <= hi + 1e-5) and not np.allclose(out, A.eval_batch(imgs))

  keys = jax.random.split(jax.random.key(4), 2)
  both = jax.jit(jax.vmap(A.train_batch, in_axes=(0, None)))(keys, imgs)
  pixels = lambda x: np.round((np.asarray(x) * A.STD + A.MEAN) * 255)  # the augmented integers
  for k, b in zip(keys, both):
    np.testing.assert_allclose(b, train(k, imgs), atol=1e-6)  # fusion may round the normalisation differently
    np.testing.assert_array_equal(pixels(b), pixels(train(k, imgs)))
  assert not np.array_equal(pixels(both[0]), pixels(both[1]))

  flat = A.eval_batch(np.full((2, 32, 32, 3), 51, np.uint8))
  assert flat.dtype == jnp.float32
  np.testing.assert_allclose(flat[1, 7, 9], (0.2 - np.array(A.MEAN)) / np.array(A.STD), rtol=1e-6)
