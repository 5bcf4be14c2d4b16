"""TabularARGN passes the backend contract suite (flat tables; seed data, rebalancing, imputation, fairness)."""

from synth_assets.testing import BackendContract


class TestTabularARGN(BackendContract):
    backend = "tabular_argn"
    train = {"max_training_time": 0.1, "max_epochs": 4, "model_size": "small"}
