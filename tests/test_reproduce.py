"""python -m dlgrok.reproduce: the prioritised GPU programme, at toy size on the CPU."""
import gzip
import os
import tarfile

import pytest

from dlgrok import inputs, reproduce
from helpers import write_mnist

ITEMS = ["throughput", "grid80", "remedies", "precision", "phase", "grid65", "f50", "appe"]


def test_list_shows_the_items_in_priority_order(tmp_path, capsys):
  reproduce.main([str(tmp_path / "out"), "--list"])
  lines = capsys.readouterr().out.splitlines()
  assert [l.split()[0] for l in lines if not l.startswith(" ")] == ITEMS
  assert "            mod97.py:all,f80,seeds=5,baseline=false" in lines  # the grid's last run
  assert not (tmp_path / "out").exists()
  reproduce.main(["--list"])  # no OUTDIR needed to list
  assert capsys.readouterr().out.splitlines() == lines
  with pytest.raises(inputs.InputError, match="OUTDIR is required"):
    reproduce.main(["--budget", "5"])


def test_one_tiny_item_and_what_does_not_fit(tmp_path, monkeypatch):
  out, work = tmp_path / "out", tmp_path / "runs"
  reproduce.main([str(out), "--tiny", "--only", "precision", "--budget", "30", "--workdirs", str(work)])
  assert sorted(os.listdir(out)) == ["reproduce.log", "results.md", "results.tar.gz"]
  text = (out / "results.md").read_text()
  assert "## Precision: highest vs default matmuls" in text and text.count("— done, ") == 2
  assert "matmul precision `highest`" in text and "matmul precision `default`" in text
  assert text.count("| 80 % | none | full | 1 |") == 2 and text.count("| 80 % | all | p100 | 1 |") == 2
  with tarfile.open(out / "results.tar.gz") as tar:
    names = set(tar.getnames())
    for p in ("highest", "default"):
      assert f"items/precision/precision_{p}/metrics.jsonl.gz" in names
      rows = gzip.decompress(tar.extractfile(f"items/precision/precision_{p}/metrics.jsonl.gz").read())
      assert rows.count(b'"step": 60') == 2  # the last evaluation of the baseline and the decomposed model
    assert "items/precision/table.md" in names and any(n.endswith(".png") for n in names)
  # a budget already spent: the grid is skipped and says why; the resumable 50 % run is stopped before it starts;
  # App. E without the MNIST files is skipped, saying which files and where
  monkeypatch.setenv("DLGROK_DATA", str(tmp_path / "nodata"))
  reproduce.main([str(tmp_path / "none"), "--tiny", "--only", "grid65,f50,appe", "--budget", "0.001",
                  "--workdirs", str(work)])
  text = (tmp_path / "none" / "results.md").read_text()
  assert "skipped: estimated" in text and "--only grid65" in text
  assert "stopped: the budget ran out before this run (rerun with `--only f50` to continue)" in text
  assert "## App. E, Figure 24" in text and "skipped: MNIST files not found" in text
  assert str(tmp_path / "nodata" / "mnist") in text and not (work / "appe_none").exists()


@pytest.mark.slow
def test_every_item_at_toy_size(tmp_path, monkeypatch):
  write_mnist(str(tmp_path / "data" / "mnist"), n_train=600, n_test=100)  # App. E's tiny runs read 512 of them
  monkeypatch.setenv("DLGROK_DATA", str(tmp_path / "data"))
  out = tmp_path / "out"
  reproduce.main([str(out), "--tiny", "--budget", "60", "--workdirs", str(tmp_path / "runs")])
  text = (out / "results.md").read_text()
  assert [l[3:] for l in text.splitlines() if l.startswith("## ")] == [i.title for i in reproduce.items(True)]
  assert "skipped" not in text and "failed" not in text
  # App. E: five runs, one table per weight decay (the fixed split: 512 training images of 512 + 100), then
  # Figure 24's numbers: weight decay x rank for each layer group
  assert text.count("mnist_wd.py:") == 5 and text.count("| 83.6601 % | all | p50 | 1 |") == 6
  assert [l for l in text.splitlines() if l.startswith("Best test accuracy in %, decomposed:")] == [
      f"Best test accuracy in %, decomposed: {g}: mean ± spread over 1 seeds" for g in
      ("all layers", "layer 1", "layer 2", "layer 3")]
  assert os.path.getsize(out / "results.tar.gz") < reproduce.MAX_FILE
