"""The records and their analysis, torch-free: the record schema, the results store, which records stand
together, the statistics, the reports and ``tssl check``.

Nothing here imports torch or the engine, so ``tssl report`` and ``tssl check`` run where torch is not installed
(tests/test_torch_free.py).
"""
