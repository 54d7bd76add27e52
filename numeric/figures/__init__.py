"""Figures of what weight decay does, for `optequiv plot` and the documents (needs matplotlib,
the extra `optequiv[plot]`). Trajectories come from the generated numeric optimizers
(numeric.numpy_step), characteristic roots from the symbolic rules; nothing is hand-written."""
