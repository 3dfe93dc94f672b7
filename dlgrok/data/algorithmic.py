"""Binary-operation tables mod p (Power et al. 2022): inputs `x op y =`, label z.

Token ids: 0..p-1 are numbers, p is the operation token, p+1 is '='; the vocabulary has p+2 tokens.
"""
import numpy as np

OPS = {
    "x/y": lambda x, y, p: x * pow_mod(y, p - 2, p) % p,
    "x+y": lambda x, y, p: (x + y) % p,
    "x-y": lambda x, y, p: (x - y) % p,
    "x*y": lambda x, y, p: x * y % p,
    "x^2+y^2": lambda x, y, p: (x**2 + y**2) % p,
    "x^2+xy+y^2": lambda x, y, p: (x**2 + x * y + y**2) % p,
    "x^2+xy+y^2+x": lambda x, y, p: (x**2 + x * y + y**2 + x) % p,
    "x^3+xy": lambda x, y, p: (x**3 + x * y) % p,
    "x^3+xy^2+y": lambda x, y, p: (x**3 + x * y**2 + y) % p,
}


def pow_mod(y, e, p):
  out = np.ones_like(y)
  base = y % p
  while e:
    if e & 1:
      out = out * base % p
    base = base * base % p
    e >>= 1
  return out


def is_prime(n):
  return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def check(op, p):
  if op not in OPS:
    raise ValueError(f"unknown op {op!r}; allowed: {', '.join(OPS)}")
  if op == "x/y" and not is_prime(p):
    raise ValueError(f"p={p} is not prime; division mod p needs a prime p (e.g. 59, 97, 113)")
  if p < 2:
    raise ValueError(f"p={p} must be at least 2")


def make(op="x/y", p=97, nonzero_y=False):
  """(inputs int32 (N, 4), labels int32 (N,)) over all pairs; y runs over 1..p-1 for division, and for any op
  with `nonzero_y` (grokfast's data: x * y mod 97 with y != 0, 9312 pairs)."""
  check(op, p)
  y_from = 1 if op == "x/y" or nonzero_y else 0
  x, y = np.meshgrid(np.arange(p, dtype=np.int64), np.arange(y_from, p, dtype=np.int64), indexing="ij")
  x, y = x.ravel(), y.ravel()
  z = OPS[op](x, y, p)
  inputs = np.stack([x, np.full_like(x, p), y, np.full_like(x, p + 1)], axis=1)
  return inputs.astype(np.int32), z.astype(np.int32)


def vocab_size(p):
  return p + 2


def n_train(n, frac):
  """Training examples for a train fraction: int(frac * n), as the PyTorch reference code."""
  return int(frac * n)
