"""TabularARGN for synth-assets: an autoregressive network over the encoded columns of a flat table, and of
trees of tables as records under their parents (sequences.py).

Importing this package is cheap; torch is imported only when a model is trained or sampled.
"""

from synth_tabular_argn.api import TabularARGN
from synth_tabular_argn.backend import TabularARGNBackend

__all__ = ["TabularARGN", "TabularARGNBackend"]
