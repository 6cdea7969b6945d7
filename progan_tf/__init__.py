"""progan_tf: Progressive Growing of GANs (Karras et al., ICLR 2018) for TensorFlow 2 / Keras 3.

Importing the package registers every custom layer with Keras (package "progan"),
so `keras.models.load_model("generator.keras")` works after `import progan_tf`.
"""
__version__ = "0.1.0"
