"""Training: one step function, one loop, two backends (plain torch and cerebras.pytorch).

    loop.py, step.py, tasks.py   the Trainer, its step, and what differs between the two tasks
    label_weights.py, schedules.py, optim.py, reporting.py, checkpoint.py, backends/

May import: the package root, ``contract``, ``data``, ``models``, ``evaluation.metrics`` (the
eval metrics) and the Cerebras edge ``cerebras`` (its backend, lazily); nothing else of
``evaluation`` (tests/test_import_rules.py).
"""
