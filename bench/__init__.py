"""Side-by-side benchmark of our TabularARGN backend against the reference engine (mostlyai-engine).

Entry point: `.venv/bin/python bench/run_bench.py`. The two engines run in their own subprocesses
(`run_ours.py` in the project venv, `run_reference.py` in the peer venv) so that neither one's imports,
threads or memory leak into the other's numbers.
"""
