"""Flax linen models, used as pure functions through ``init`` / ``apply``."""

from kjax.models.cgan import Discriminator, Generator
from kjax.models.cvae import ConditionalVAE
from kjax.models.vae import BetaVAE, ConvDecoder, ConvEncoder, Upsample2x

__all__ = ["BetaVAE", "ConditionalVAE", "ConvDecoder", "ConvEncoder", "Discriminator", "Generator",
           "Upsample2x"]
