"""REFERENCE for the differential-privacy benchmark (run_dp.py): run_reference.py with the engine's DP (peer venv).

    /tmp/peer-venv/bin/python bench/dp_reference.py [--dp JSON] RUN_REFERENCE_ARGS...

--dp is a mostlyai-engine DifferentialPrivacyConfig as JSON (say '{"max_epsilon": 4}'); it goes to both
engine.analyze (value protection's ε) and engine.train (DP-SGD) of every model run_reference.py trains (with
--ctx: the context's flat model and the records' sequential model, each given the same config). Without --dp,
run_reference.py runs unchanged. Afterwards <out>/result.json gets each model's progress messages from the engine's
progress-messages.csv (epoch, seconds, validation loss, the ε it reports and whether the epoch was kept as the
checkpoint): progress[""] is the model of --train's table, progress["context"] the context's.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def with_dp(dp: dict) -> None:
    """Give engine.analyze and engine.train this DP config (run_reference.py calls them through the module)."""
    from mostlyai import engine
    from mostlyai.engine.domain import DifferentialPrivacyConfig

    config = DifferentialPrivacyConfig(**dp)  # analyze reads its attributes; a dict would not do
    engine.analyze = functools.partial(engine.analyze, differential_privacy=config)
    engine.train = functools.partial(engine.train, differential_privacy=config)


def messages(workspace: Path) -> list[dict]:
    """The engine's progress messages: those with a validation loss end an epoch; the last one's ε is the last
    reported (a run stopped inside its first epoch reports one without a validation loss)."""
    import pandas as pd

    path = workspace / "ModelStore" / "model-data" / "progress-messages.csv"
    if not path.exists():
        return []
    log = pd.read_csv(path)
    keep = [c for c in ("epoch", "total_time", "val_loss", "dp_eps", "is_checkpoint") if c in log]
    return [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()} for row in log[keep].to_dict("records")]


def show_epochs(**kwargs) -> None:
    """run_reference.show_epochs, tolerating an epoch-end message without a training loss (the engine sends one
    when DP stops it at its first epoch end: it then validates the weights it saves, with no loss left to average)."""
    message = kwargs.get("message") or {}
    if message.get("val_loss") is not None:
        train = message.get("trn_loss")
        eps = f"  ε {message['dp_eps']:.3f}" if message.get("dp_eps") is not None else ""
        print(f"[reference] epoch {message['epoch']:>5.1f}  train {'–' if train is None else f'{train:.4f}'}  "
              f"val {message['val_loss']:.4f}  {message['total_time']:.0f}s{eps}"
              f"{'  *' if message.get('is_checkpoint') else ''}", flush=True)


def main() -> None:
    argv = sys.argv[1:]
    dp = None
    if "--dp" in argv:
        at = argv.index("--dp")
        dp = json.loads(argv[at + 1])
        del argv[at : at + 2]
        with_dp(dp)
    out = Path(argv[argv.index("--out") + 1]).resolve()
    from bench import run_reference

    run_reference.show_epochs = show_epochs
    sys.argv = [str(REPO / "bench" / "run_reference.py"), *argv]
    run_reference.main()
    result = json.loads((out / "result.json").read_text())
    result["differential_privacy"] = dp
    result["progress"] = {"": messages(out / "workspace")}
    if (out / "workspace-ctx").is_dir():
        result["progress"]["context"] = messages(out / "workspace-ctx")
    (out / "result.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    from bench.procs import keep_traceback

    keep_traceback(main)
