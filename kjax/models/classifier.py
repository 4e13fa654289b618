"""A small CNN classifier of 28×28 characters: kjax's domain evaluator (issue 4).

Its penultimate features are the space in which kjax measures Fréchet distance and KID of
generated images, and its predictions give the class accuracy of conditional samples.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax


class CNNClassifier(nn.Module):
  """Two stride-2 3×3 conv stages (ReLU), a dense feature layer (ReLU), class logits.

  Attributes:
    num_classes: number of classes.
    channels: conv channels per stage (``(32, 64)``).
    hidden: width of the feature layer (128): the features of ``features``.
  """

  num_classes: int
  channels: Sequence[int] = (32, 64)
  hidden: int = 128

  def setup(self):
    self.convs = [nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME") for c in self.channels]
    self.dense = nn.Dense(self.hidden)
    self.head = nn.Dense(self.num_classes)

  def features(self, x: jax.Array) -> jax.Array:
    """float ``[B, 28, 28, 1]`` in [0, 1] → penultimate features float ``[B, hidden]``."""
    for conv in self.convs:
      x = nn.relu(conv(x))
    return nn.relu(self.dense(x.reshape(x.shape[0], -1)))

  def __call__(self, x: jax.Array) -> jax.Array:
    """float ``[B, 28, 28, 1]`` in [0, 1] → class logits float ``[B, num_classes]``."""
    return self.head(self.features(x))
