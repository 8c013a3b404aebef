"""rnnbench: Keras-exact recurrent text classifiers in JAX/Flax, and a step-time benchmark."""

__version__ = "0.1.0"
