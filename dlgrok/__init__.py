"""dlgrok: decomposed learning and grokking in JAX/Flax."""
