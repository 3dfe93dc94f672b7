import numpy as np
import pytest

from conftest import experiment
from dlgrok.data import algorithmic as A
from dlgrok.tasks import modp


@pytest.mark.parametrize("p,n", [(97, 9312), (59, 3422)])
def test_division_tables(p, n):
  x, z = A.make("x/y", p)
  assert x.shape == (n, 4) and z.shape == (n,)
  assert np.all(x[:, 1] == p) and np.all(x[:, 3] == p + 1)
  assert np.all(x[:, 2] >= 1)
  assert np.all(z.astype(np.int64) * x[:, 2] % p == x[:, 0])
  assert len({tuple(r) for r in x[:, [0, 2]]}) == n
  assert A.vocab_size(p) == p + 2


@pytest.mark.parametrize("op,expect", [("x+y", (3 + 5) % 7), ("x-y", (3 - 5) % 7), ("x*y", 15 % 7),
                                       ("x^2+y^2", 34 % 7), ("x^2+xy+y^2", 49 % 7), ("x^2+xy+y^2+x", 52 % 7),
                                       ("x^3+xy", 42 % 7), ("x^3+xy^2+y", 107 % 7)])
def test_operations(op, expect):
  x, z = A.make(op, 7)
  assert len(z) == 49
  row = np.where((x[:, 0] == 3) & (x[:, 2] == 5))[0][0]
  assert z[row] == expect


def test_multiplication_without_zero_is_grokfasts_data():
  # grokfast's main.py: x in 0..96, y in 1..96, label x * y % 97 (9312 pairs); dlgrok's x*y runs over all pairs
  assert len(A.make("x*y", 97)[1]) == 97 * 97
  x, z = A.make("x*y", 97, nonzero_y=True)
  assert x.shape == (9312, 4) and x[:, 2].min() == 1 and x[:, 0].min() == 0
  assert np.array_equal(z, x[:, 0] * x[:, 2] % 97)
  assert np.array_equal(A.make("x/y", 97, nonzero_y=True)[1], A.make("x/y", 97)[1])
  data = modp.TASK.load(experiment("remedies", "preln,f50,op=x*y,nonzero_y=true"))
  assert len(data.y) == 9312 and data.n_train == 4656


def test_bad_inputs():
  with pytest.raises(ValueError, match="p=91 is not prime"):
    A.make("x/y", 91)
  with pytest.raises(ValueError, match="unknown op 'x%y'.*x/y"):
    A.make("x%y", 7)
  assert A.n_train(9312, 0.5) == 4656 and A.n_train(9312, 0.8) == 7449
