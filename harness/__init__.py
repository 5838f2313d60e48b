"""What the tests and the benchmarks share: a real hub process, SSH and Jupyter clients, a browser.

Nothing here is imported by gpulab itself; ``tests/`` and ``benchmarks/`` both use it.
"""
