"""Training of Gaussian heads: a contrastive term on -||q - d||² plus λ·SIGReg (LeJEPA).

Kept outside the ``ragcun`` library on purpose: the library loads and serves model directories,
this package produces them.
"""
