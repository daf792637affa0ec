"""The multi-branch Keras model, its custom layers, its memory footprint and the measured step."""
