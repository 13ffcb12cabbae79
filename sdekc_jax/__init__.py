"""SDEKC in JAX/Flax."""
