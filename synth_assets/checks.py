"""The audits of write-audit-publish as Dagster's blocking asset checks: their specs, and the plain `Check`s of
audit.py as `AssetCheckResult`s. Nothing here decides: audit.py does, for Dagster and the command line alike."""

import dagster as dg

from synth_assets.audit import BUDGET_CHECK, MODEL_CHECK, PRIVACY_CHECK, SCHEMA_CHECK, Check
from synth_assets.config import DatasetSpec


def synthetic_check_specs(asset: dg.AssetKey, spec: DatasetSpec) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(SCHEMA_CHECK, asset=asset, blocking=True,
                          description="Columns, order, dtypes, null-free columns, categories and value ranges match "
                                      "the source's stats; keys are unique and every foreign key resolves."),
        dg.AssetCheckSpec(PRIVACY_CHECK, asset=asset, blocking=True,
                          description=f"The privacy gate, each figure against real unseen data judged the same way "
                                      f"and beyond three standard errors: the DCR share above its floor "
                                      f"(quality.max_dcr_excess "
                                      f"{spec.quality.max_dcr_excess}), a membership attack's AUC "
                                      f"(quality.max_membership_auc {spec.quality.max_membership_auc}), exact copies "
                                      f"of training subjects above the holdout's (quality.max_copy_excess "
                                      f"{spec.quality.max_copy_excess}), copies of training texts in free-text "
                                      f"columns above the holdout's (quality.max_text_copy_excess "
                                      f"{spec.quality.max_text_copy_excess}), and the plain DCR share "
                                      f"(quality.max_dcr_share {spec.quality.max_dcr_share})."),
    ]


def model_check_specs(asset: dg.AssetKey, spec: DatasetSpec | None = None) -> list[dg.AssetCheckSpec]:
    checks = [dg.AssetCheckSpec(MODEL_CHECK, asset=asset, blocking=True,
                                description="The training finished at least one epoch with a finite validation "
                                            "loss, and the checkpoint folder holds its files.")]
    if spec is not None and spec.differential_privacy is not None:
        checks.append(dg.AssetCheckSpec(
            BUDGET_CHECK, asset=asset, blocking=True,
            description=f"Differential privacy: the model's ε (training plus value protection) is within "
                        f"train.differential_privacy.max_epsilon ({spec.differential_privacy.max_epsilon}), and its "
                        "ledger lies beside the weights."))
    return checks


def asset_check_results(checks: list[Check]) -> list[dg.AssetCheckResult]:
    """Each check as a blocking asset check's result: lists and mappings in its metadata shown as JSON."""
    return [dg.AssetCheckResult(check_name=check.name, passed=check.passed, description=check.description,
                                metadata={k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v
                                          for k, v in check.metadata.items()})
            for check in checks]
