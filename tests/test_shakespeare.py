import os

import jax
import numpy as np
import pytest

from conftest import ROOT
from dlgrok.data import shakespeare as S

REAL = os.path.join(ROOT, "..", "shared", "data", "tinyshakespeare")
real = pytest.mark.skipif(not os.path.isfile(os.path.join(REAL, "input.txt")),
                          reason=f"no Tiny Shakespeare at {os.path.normpath(REAL)}/input.txt")


@real
def test_real_text_and_vocabulary():
  text = S.read(REAL)
  assert len(text) == 1115394 and text.startswith("First Citizen:\n")
  chars = S.vocab(text)
  assert len(chars) == 65 and chars[:13] == "\n !$&',-.3:;?" and chars[-26:] == "abcdefghijklmnopqrstuvwxyz"
  ids = S.encode(text[:14], chars)
  assert ids.dtype == np.int32 and ids.tolist() == [18, 47, 56, 57, 58, 1, 15, 47, 58, 47, 64, 43, 52, 10]


# (frac, train chars, test chars, train blocks, test blocks) for 1,115,394 characters and block 256:
# int(0.1 * 1115394) = 111539; (111539 - 1) // 256 = 435 (435 * 256 = 111360); (1003855 - 1) // 256 = 3921 (1003776)
# int(0.5 * 1115394) = 557697 on both sides; (557697 - 1) // 256 = 2178 (557568)
# int(0.9 * 1115394) = 1003854 (karpathy's split); 1003853 // 256 = 3921; 111539 // 256 = 435
@real
@pytest.mark.parametrize("frac,chars,test_chars,blocks,test_blocks", [
    (0.1, 111539, 1003855, 435, 3921), (0.5, 557697, 557697, 2178, 2178), (0.9, 1003854, 111540, 3921, 435)])
def test_real_splits(frac, chars, test_chars, blocks, test_blocks):
  d = S.load(REAL, frac, 256)
  stream, k, x, y = d["stream"], d["n_train_chars"], d["x"], d["y"]
  assert (k, len(stream) - k, d["n_train_blocks"], len(x) - d["n_train_blocks"]) == (
      chars, test_chars, blocks, test_blocks)
  assert S.n_train_chars(1115394, frac, 256) == chars
  assert x.shape == y.shape == (blocks + test_blocks, 256) and x.dtype == y.dtype == stream.dtype == np.int32
  assert len(d["vocab"]) == 65 and int(stream.max()) == 64
  assert not (x.flags.writeable or y.flags.writeable or stream.flags.writeable)
  # train blocks are consecutive from character 0, test blocks from character k; y is x shifted by one
  np.testing.assert_array_equal(x[:blocks].ravel(), stream[:blocks * 256])
  np.testing.assert_array_equal(y[:blocks].ravel(), stream[1:blocks * 256 + 1])
  np.testing.assert_array_equal(x[blocks:].ravel(), stream[k:k + test_blocks * 256])
  np.testing.assert_array_equal(y[blocks:].ravel(), stream[k + 1:k + test_blocks * 256 + 1])


def test_blocks_by_hand():
  x, y = S.blocks(np.arange(10), 3)  # (10 - 1) // 3 = 3 blocks; character 9 is only ever a target
  assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]] and y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
  x, y = S.blocks(np.arange(9), 3)  # (9 - 1) // 3 = 2
  assert x.tolist() == [[0, 1, 2], [3, 4, 5]] and y.tolist() == [[1, 2, 3], [4, 5, 6]] and x.dtype == np.int32
  assert S.blocks(np.arange(3), 3)[0].shape == (0, 3)


def test_vocab_encode_and_split_errors():
  assert S.vocab("hello") == "ehlo" and S.encode("hello", "ehlo").tolist() == [1, 0, 2, 2, 3]
  with pytest.raises(ValueError, match=r"not in the vocabulary: 'xz'"):
    S.encode("xhz", "ehlo")
  assert S.n_train_chars(1000, 0.9, 99) == 900
  with pytest.raises(S.DataError, match=r"frac=0.9 splits 1000 characters into 900 for training and 100 for "
                                        r"testing; each side needs at least block\+1 = 101"):
    S.n_train_chars(1000, 0.9, 100)
  with pytest.raises(S.DataError, match=r"into 0 for training"):
    S.n_train_chars(1000, 0.0)


def test_windows():
  stream = np.arange(1000, dtype=np.int32) * 7 % 65  # position i holds i * 7 % 65: windows are checkable
  key = jax.random.PRNGKey(0)
  xb, yb = jax.jit(S.windows, static_argnums=(3, 4))(stream, 20, key, 64, 8)
  xb, yb = np.asarray(xb), np.asarray(yb)
  assert xb.shape == yb.shape == (64, 8) and xb.dtype == np.int32
  starts = np.asarray(jax.random.randint(key, (64,), 0, 12))  # 12 = limit - block: the last y index is 19
  assert starts.min() == 0 and starts.max() == 11  # 64 draws from 12 values reach both ends
  pos = starts[:, None] + np.arange(8)
  np.testing.assert_array_equal(xb, pos * 7 % 65)
  np.testing.assert_array_equal(yb, (pos + 1) * 7 % 65)
  np.testing.assert_array_equal(xb[:, 1:], yb[:, :-1])
  # only characters < limit are read: a stream that is -1 from the limit on never shows it
  poisoned = np.where(np.arange(1000) < 20, stream, -1).astype(np.int32)
  for k in range(20):
    assert int(np.asarray(S.windows(poisoned, 20, jax.random.PRNGKey(k), 64, 8)[1]).min()) >= 0
  keys = jax.random.split(key, 2)
  both = jax.vmap(lambda k: S.windows(stream, 500, k, 4, 16))(keys)
  for i in range(2):
    alone = S.windows(stream, 500, keys[i], 4, 16)
    np.testing.assert_array_equal(both[0][i], alone[0])
    np.testing.assert_array_equal(both[1][i], alone[1])
  assert both[0].shape == (2, 4, 16) and not np.array_equal(both[0][0], both[0][1])
  with pytest.raises(ValueError, match=r"limit=8: need at least block\+1 = 9"):
    S.windows(stream, 8, key, 4, 8)


def test_missing_file_names_file_and_directories(tmp_path, monkeypatch):
  with pytest.raises(S.DataError, match="need input.txt") as e:
    S.read(str(tmp_path / "nowhere"))
  msg = str(e.value)
  assert "need input.txt" in msg and f"{tmp_path / 'nowhere'} (no such directory)" in msg
  assert S.URL in msg and "data_dir=DIR" in msg
  monkeypatch.delenv("DLGROK_DATA", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  (tmp_path / "work" / "repo").mkdir(parents=True)
  (tmp_path / "work" / "shared" / "data" / "tinyshakespeare").mkdir(parents=True)
  monkeypatch.chdir(tmp_path / "work" / "repo")
  with pytest.raises(S.DataError, match="missing input.txt") as e:
    S.find()
  msg = str(e.value)
  assert f"{tmp_path / 'work' / 'shared' / 'data' / 'tinyshakespeare'} (missing input.txt)" in msg
  assert f"{tmp_path / 'home' / 'data' / 'tinyshakespeare'} (no such directory)" in msg
  home = tmp_path / "home" / "data" / "tinyshakespeare"
  home.mkdir(parents=True)
  (home / "input.txt").write_text("abcabcabcab\n" * 10)
  assert S.find() == str(home / "input.txt")
  d = S.load(frac=0.5, block=4)  # 120 characters of 4 kinds: 60 + 60, (60 - 1) // 4 = 14 blocks each side
  assert (d["vocab"], d["n_train_chars"], d["n_train_blocks"], d["x"].shape) == ("\nabc", 60, 14, (28, 4))
  (home / "input.txt").write_text("xy" * 50)  # a rewritten file is read again
  assert S.load(frac=0.5, block=4)["vocab"] == "xy"
  monkeypatch.setenv("DLGROK_DATA", str(tmp_path / "env"))
  with pytest.raises(S.DataError, match=r"looked in: .*env/tinyshakespeare \(no such directory\); download"):
    S.find()
