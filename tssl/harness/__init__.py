"""The harness: suite files, the runner and its executors, ``tssl status``, provenance and ``tssl bench``.

It turns a suite into runs, trains them with the engine and the methods, measures them and writes one record
per run to the store (``tssl.records``). Nothing is imported here: ``tssl report`` reads suite files through
``tssl.harness.suites`` without torch.
"""
