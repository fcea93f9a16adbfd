"""recommender.core: a small Keras-like deep-learning library on torch tensors and autograd.

The optimizers and regularizers here are the ones the RBM trains with; there is no second copy.
"""
