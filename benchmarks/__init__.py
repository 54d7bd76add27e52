"""Benchmarks: optimizer step times against torch.optim and the symbolic engine's costs."""
