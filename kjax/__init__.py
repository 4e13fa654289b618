"""kjax: JAX/Flax generative models of handwriting (beta-VAE, CVAE, CGAN) on Kuzushiji and MNIST."""

__version__ = "0.1.0"
