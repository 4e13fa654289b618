"""Flax linen models, used as pure functions through ``init`` / ``apply``."""

from kjax.models.vae import BetaVAE, ConvDecoder, ConvEncoder, Upsample2x

__all__ = ["BetaVAE", "ConvDecoder", "ConvEncoder", "Upsample2x"]
