"""A small CNN classifier of H×W characters (28×28 for KMNIST): kjax's domain evaluator
(issue 4).

Its penultimate features are the space in which kjax measures Fréchet distance and KID of
generated images, and its predictions give the class accuracy of conditional samples.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from kjax.models import conv


class CNNClassifier(nn.Module):
  """Per stage a 3×3 conv and a stride-2 3×3 conv (ReLU); a dense feature layer (ReLU),
  dropout, class logits.

  Attributes:
    num_classes: number of classes.
    channels: conv channels per stage (``(32, 64)``: 28 → 14 → 7 pixels, 32 → 16 → 8).
    hidden: width of the feature layer (128): the features of ``features``.
    dropout_rate: dropout on the features in training (0 disables it).
    conv_impl: ``kjax.models.conv.IMPLS``: on CPU the trunk runs over chunks of the batch.
  """

  num_classes: int
  channels: Sequence[int] = (32, 64)
  hidden: int = 128
  dropout_rate: float = 0.0
  conv_impl: str = "auto"

  def setup(self):
    self.convs = [(nn.Conv(c, (3, 3), padding="SAME"),
                   nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME")) for c in self.channels]
    self.dense = nn.Dense(self.hidden)
    self.dropout = nn.Dropout(self.dropout_rate)
    self.head = nn.Dense(self.num_classes)

  def features(self, x: jax.Array) -> jax.Array:
    """float ``[B, H, W, C]`` in [0, 1] → penultimate features float ``[B, hidden]`` (≥ 0)."""
    def trunk(x):
      for same, down in self.convs:
        x = nn.relu(down(nn.relu(same(x))))
      return nn.relu(self.dense(x.reshape(x.shape[0], -1)))

    return conv.over_batch_chunks(trunk, x, self.conv_impl)

  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    """float ``[B, H, W, C]`` in [0, 1] → class logits float ``[B, num_classes]``.

    ``train=True`` applies dropout and needs a ``'dropout'`` PRNG stream.
    """
    return self.head(self.dropout(self.features(x), deterministic=not train))
