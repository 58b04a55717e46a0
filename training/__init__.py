"""Training of Gaussian heads: a contrastive term on -||q - d||² plus λ·SIGReg (LeJEPA).

The repository's ``training/`` folder, installed as ``ragcun.training``. It imports the library; the
library never imports it (``ragcun train`` reaches it through an entry point, :mod:`ragcun.plugins`):
the library loads and serves model directories, this package produces them.
"""
