"""Training: one step function, one loop, two backends (plain torch and cerebras.pytorch)."""
