"""A plain MLP for MNIST (App. E, F): Dense layers l1, l2, ... with ReLU between, PyTorch-default init."""
import flax.linen as nn

from dlgrok.models.transformer import dense


class MLP(nn.Module):
  """Flattens the input; `features` are the output widths of l1, l2, ... (the last one gives the logits)."""

  features: tuple = (200, 200, 10)
  init_scheme: str = "torch"

  @nn.compact
  def __call__(self, x):
    x = x.reshape(x.shape[0], -1)
    for i, f in enumerate(self.features):
      x = dense(f, self.init_scheme, x.shape[-1], f"l{i + 1}")(x)
      if i < len(self.features) - 1:
        x = nn.relu(x)
    return x
