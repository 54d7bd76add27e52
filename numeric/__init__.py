"""Numeric optimizers generated from derive's symbolic rules, and torch.optim cross-checks."""
