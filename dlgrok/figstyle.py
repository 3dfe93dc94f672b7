"""What every figure shares: the Agg backend, the paper-like style, group names and order, rank labels, titles."""
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dlgrok import configs, markdown  # noqa: E402

# sized so that a 3-panel figure scaled to a paper's text width keeps ~6 pt text
plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "legend.fontsize": 10, "figure.titlesize": 12,
                     "figure.dpi": 150})
GROUP_NAMES = {"none": "baseline", "pos": "position embedding", "tok": "token embedding",
               "attn": "multi-head attention", "qkv": "QKV_in", "proj": "Proj_out", "ffn": "feed-forward blocks",
               "fc1": "FC1", "fc2": "FC2", "out": "output layer", "patch": "patch embedding", "pre": "pre-logits",
               "all": "all layers", "all_but_fc1_out": "all but FC1 and output",
               "nopos": "no position embedding", "preln": "pre-LN (grokfast's model)", "l1": "layer 1",
               "l2": "layer 2", "l3": "layer 3",
               "l23": "layers 2 + 3"}


def group_key(group):
  """Orders groups as the paper: embeddings, attention, feed-forward, output, all; unknown ones last."""
  order = list(GROUP_NAMES)
  return [order.index(g) if g in order else len(order) for g in group.split(",")], group


def group_name(group):
  return " + ".join(GROUP_NAMES.get(g, g) for g in group.split(","))


def rank_label(group, rank):
  """'baseline', 'rank 32', 'rank 12.5 %' of a row's group and rank label."""
  return "baseline" if group == "none" else configs.Rank.from_label(rank).text


def fmt_step(s):
  return "0" if s == 0 else markdown.num(s, 2)


def suptitle(fig, text):
  """A figure title wrapped to the figure's width (about 10 characters per inch at this font size)."""
  width = int(fig.get_figwidth() * 10)
  text = text.replace(" %", "\u00a0%")  # keep "50 %" on one line
  fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")))
