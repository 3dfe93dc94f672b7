import hashlib
import os
import pickle
import tarfile

import numpy as np
import pytest

from dlgrok.data import cifar10 as C


def value(i, row, col, channel):
  """A known pixel value: image, row, column and channel each move it by a different step, so any mix-up shows."""
  return (i * 97 + row * 32 + col + channel * 11) % 256


def pattern(n):
  i, r, c, ch = np.meshgrid(np.arange(n), np.arange(32), np.arange(32), np.arange(3), indexing="ij")
  return value(i, r, c, ch).astype(np.uint8)


def write_by_hand(d, sizes=(3, 3, 3, 3, 3, 2), labels=None):
  """Batches built from the format's description, not write_batches: row = 1024 R, 1024 G, 1024 B, each row-major."""
  os.makedirs(d, exist_ok=True)
  start = 0
  for name, n in zip(C.FILES, sizes):
    data = np.zeros((n, 3072), np.uint8)
    for k in range(n):
      for ch in range(3):
        for r in range(32):
          for c in range(32):
            data[k, ch * 1024 + r * 32 + c] = value(start + k, r, c, ch)
    ys = labels[start:start + n] if labels is not None else [(start + k) % 10 for k in range(n)]
    with open(os.path.join(d, name), "wb") as f:
      pickle.dump({b"batch_label": b"x", b"labels": list(ys), b"data": data, b"filenames": [b"a.png"] * n}, f)
    start += n


def test_pixels_labels_and_order(tmp_path):
  write_by_hand(str(tmp_path))
  x, y, n_train = C.load(str(tmp_path))
  assert x.shape == (17, 32, 32, 3) and x.dtype == np.uint8 and n_train == 15
  assert y.dtype == np.int32 and y.tolist() == [k % 10 for k in range(17)]
  np.testing.assert_array_equal(x, pattern(17))
  # spot checks: image 4 (second of data_batch_2), row 1, column 2, green = (4*97 + 32 + 2 + 11) % 256
  assert int(x[4, 1, 2, 1]) == 433 % 256 == 177
  assert int(x[15, 31, 0, 2]) == (15 * 97 + 31 * 32 + 22) % 256 == 165  # the first test image
  assert not (x.flags.writeable or y.flags.writeable)


def test_write_batches_format(tmp_path):
  x, y = pattern(13), np.arange(13) % 10
  C.write_batches(str(tmp_path), x, y, 11)
  with open(tmp_path / "data_batch_1", "rb") as f:
    b = pickle.load(f, encoding="bytes")
  assert set(b) == {b"batch_label", b"labels", b"data", b"filenames"} and b[b"batch_label"] == b"training batch 1 of 5"
  assert b[b"data"].dtype == np.uint8 and b[b"data"].shape == (3, 3072) and b[b"labels"] == [0, 1, 2]  # 11 = 3+2*4
  assert int(b[b"data"][1, 1024 + 5 * 32 + 7]) == value(1, 5, 7, 1)
  sizes = []
  for name in C.FILES:
    with open(tmp_path / name, "rb") as f:
      sizes.append(len(pickle.load(f, encoding="bytes")[b"labels"]))
  assert sizes == [3, 2, 2, 2, 2, 2]
  with open(tmp_path / "batches.meta", "rb") as f:
    meta = pickle.load(f, encoding="bytes")
  assert meta[b"label_names"][0] == b"airplane" and meta[b"num_vis"] == 3072
  bx, by, n_train = C.load(str(tmp_path))
  np.testing.assert_array_equal(bx, x)
  assert by.tolist() == y.tolist() and n_train == 11


def test_subfolder_and_search_order(tmp_path, monkeypatch):
  write_by_hand(str(tmp_path / "c" / C.SUBDIR))
  assert C.find(str(tmp_path / "c")) == str(tmp_path / "c" / C.SUBDIR)
  assert C.load(str(tmp_path / "c"))[0].shape == (17, 32, 32, 3)
  monkeypatch.delenv("DLGROK_DATA", raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  (tmp_path / "work" / "repo").mkdir(parents=True)
  monkeypatch.chdir(tmp_path / "work" / "repo")
  write_by_hand(str(tmp_path / "home" / "data" / "cifar10"), sizes=(1, 1, 1, 1, 1, 1))
  assert C.load()[2] == 5
  write_by_hand(str(tmp_path / "work" / "shared" / "data" / "cifar10" / C.SUBDIR), sizes=(2, 0, 0, 0, 0, 1))
  x, y, n_train = C.load()  # ../shared/data/cifar10 comes first; empty batches are allowed
  assert (x.shape, y.tolist(), n_train) == ((3, 32, 32, 3), [0, 1, 2], 2)
  monkeypatch.setenv("DLGROK_DATA", str(tmp_path / "c" / ".."))
  with pytest.raises(C.DataError, match=rf"looked in: {tmp_path}/cifar10 \(no such directory\)"):
    C.load()


def test_missing_files_name_files_and_directories(tmp_path):
  with pytest.raises(C.DataError, match="no such directory") as e:
    C.load(str(tmp_path / "none"))
  msg = str(e.value)
  assert f"{tmp_path / 'none'} (no such directory)" in msg and "need data_batch_1, data_batch_2" in msg
  assert C.URL in msg and "data_dir=DIR" in msg and "download=True" in msg
  write_by_hand(str(tmp_path / "d"))
  os.remove(tmp_path / "d" / "data_batch_3")
  os.remove(tmp_path / "d" / "test_batch")
  (tmp_path / "d" / C.SUBDIR).mkdir()
  with pytest.raises(C.DataError, match="missing data_batch_3") as e:
    C.load(str(tmp_path / "d"))
  msg = str(e.value)
  assert f"{tmp_path / 'd'} (missing data_batch_3, test_batch)" in msg
  assert f"{tmp_path / 'd' / C.SUBDIR} (missing data_batch_1, data_batch_2, data_batch_3" in msg


@pytest.mark.parametrize("batch,message", [
    ({b"data": np.zeros((2, 3071), np.uint8), b"labels": [0, 1]}, r"b'data' is uint8 \(2, 3071\), expected uint8"),
    ({b"data": np.zeros((2, 3072)), b"labels": [0, 1]}, r"b'data' is float64 \(2, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, r"b'labels' has shape \(1,\) \(int64\), expected 2"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, r"label 10 is outside 0\.\.9"),
    ({b"labels": [0]}, r"not a CIFAR-10 batch"),
])
def test_bad_batches_name_the_file(tmp_path, batch, message):
  write_by_hand(str(tmp_path))
  with open(tmp_path / "data_batch_4", "wb") as f:
    pickle.dump(batch, f)
  with pytest.raises(C.DataError, match=f"{tmp_path / 'data_batch_4'}: {message}"):
    C.load(str(tmp_path))
  (tmp_path / "data_batch_4").write_bytes(b"\x80\x04junk")
  with pytest.raises(C.DataError, match=r"data_batch_4: unreadable"):
    C.load(str(tmp_path))


def test_download_from_a_local_file(tmp_path, monkeypatch):
  """download=True on a file:// URL: nothing leaves the machine."""
  write_by_hand(str(tmp_path / "src" / C.SUBDIR))
  tar = tmp_path / "src" / "cifar-10-python.tar.gz"
  with tarfile.open(tar, "w:gz") as t:
    t.add(tmp_path / "src" / C.SUBDIR, arcname=C.SUBDIR)
  monkeypatch.setattr(C, "URL", tar.as_uri())
  monkeypatch.setattr(C, "MD5", hashlib.md5(tar.read_bytes()).hexdigest())
  with pytest.raises(C.DataError, match=r"no such directory"):
    C.load(str(tmp_path / "dl"))
  x, y, n_train = C.load(str(tmp_path / "dl"), download=True)
  assert n_train == 15 and y.tolist() == [k % 10 for k in range(17)]
  np.testing.assert_array_equal(x, pattern(17))
  assert os.path.isfile(tmp_path / "dl" / "cifar-10-python.tar.gz")
  monkeypatch.setattr(C, "MD5", "0" * 32)
  with pytest.raises(C.DataError, match=r"cifar-10-python\.tar\.gz: md5 [0-9a-f]{32}, expected 0{32}"):
    C.download(str(tmp_path / "dl"))
  monkeypatch.setattr(C, "URL", (tmp_path / "gone.tar.gz").as_uri())
  with pytest.raises(C.DataError, match=r"could not download file://.*gone\.tar\.gz"):
    C.load(str(tmp_path / "dl2"), download=True)
  assert os.listdir(tmp_path / "dl2") == []
