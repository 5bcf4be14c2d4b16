"""`python -m synth_assets`: list plugins, check the project file, or run a dataset without Dagster."""

from __future__ import annotations

import argparse
import sys

from synth_assets.errors import SynthError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synth_assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help="list the registered model backends")
    sub.add_parser("check", help="validate the project file (synth.yaml or $SYNTH_CONFIG)")
    run = sub.add_parser("run", help="run every stage of one dataset, without Dagster")
    run.add_argument("dataset")
    run.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    train = sub.add_parser("train", help="train one dataset's model (its earlier stages done) and publish it once "
                                         "its check passes; started by the model asset through Dagster Pipes, "
                                         "it trains as the run asks and reports back")
    train.add_argument("dataset")
    train.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    show = sub.add_parser("show", help="where a dataset's synthetic tables and report are, and its scores")
    show.add_argument("dataset")
    versions = sub.add_parser("versions", help="the versions of a dataset's model and synthetic tables, and "
                                               "which one is published")
    versions.add_argument("dataset")
    rollback = sub.add_parser("rollback", help="publish an earlier version of a dataset's model or synthetic tables")
    rollback.add_argument("dataset")
    rollback.add_argument("stage", choices=["model", "synthetic"])
    rollback.add_argument("--to", help="the version to publish (default: the release before the current one)")
    flow = sub.add_parser("flow", help="run one flow of the project file, without Dagster: resumes a killed run's "
                                       "checkpoint, and publishes the output once its checks pass")
    flow.add_argument("flow")
    flow.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    flow.add_argument("--restart", action="store_true", help="discard a killed run's checkpoint and start over")
    args = parser.parse_args(argv)
    commands = {"plugins": _plugins, "check": _check, "run": _run, "train": _train, "show": _show,
                "versions": _versions, "rollback": _rollback, "flow": _flow}
    try:
        return commands[args.command](args)
    except SynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _plugins(args) -> int:
    from synth_assets.plugins import block_types, registered_backends

    rows = registered_backends()
    if not rows:
        print("no backends registered: install a plugin (pip install -e plugins/tabular_argn)")
        return 1
    for name, (backend, plugin) in sorted(rows.items()):
        supports = ", ".join(backend.capabilities.listed())
        print(f"{name:<16} plugin={plugin:<16} supports: {supports}\n{'':<16} {backend.description}")
    print("\nflow blocks:")
    for name, block in sorted(block_types().items()):
        print(f"{name:<16} {block.description} (keys: {', '.join(block.Config.model_fields)})")
    return 0


def _flow(args) -> int:
    from synth_assets.flows import audit_flow, publish_flow, run_flow
    from synth_assets.project import load_project
    from synth_assets.releases import new_version

    project = load_project()
    result = run_flow(project, args.flow, new_version(), device=args.device, restart=args.restart,
                      log=lambda line: print(line, flush=True))
    checks = audit_flow(project.flow(args.flow), result)
    for block, figures in result.blocks.items():
        print(f"  {block:<32} {figures['rows_in']:>12,} in {figures['rows_out']:>12,} out")
    for check in checks:
        print(f"  check {check.name}: {'passed' if check.passed else 'FAILED'}: {check.description}")
    if not publish_flow(project, args.flow, result.version, checks):
        print(f"version {result.version} not published: a check failed", file=sys.stderr)
        return 1
    print(f"published {result.output}")
    return 0


def _check(args) -> int:
    from synth_assets.project import load_project
    from synth_assets.plugins import get_backend

    project = load_project()
    for name, spec in project.datasets.items():
        get_backend(spec.backend, dataset=name)
        for table in spec.tables:
            path = project.source_path(name, table)
            if not path.is_file():
                raise SynthError(f"source file {path} not found", dataset=name, table=table)
    for name, flow in project.flows.items():
        if flow.input.source is not None and not project.relative_path(flow.input.source).is_file():
            raise SynthError(f"flow '{name}': its source file {project.relative_path(flow.input.source)} is not there",
                             hint="fix input.source")
    print(f"{project.config_path}: {len(project.datasets)} dataset(s) ok: {', '.join(project.datasets)}")
    if project.flows:
        print(f"{len(project.flows)} flow(s) ok: {', '.join(project.flows)}")
    if project.store is not None:  # before any run: the bucket is there and these credentials may use it
        project.store.check()
        print(f"storage {project.store.display}: written, read back and deleted a test object "
              f"(scratch: {project.home})")
    return 0


def _show_epoch(record) -> None:
    print(f"epoch {record.epoch:>3}  train {record.train_loss:.4f}  "
          f"validation {record.validation_loss:.4f}  {record.seconds:.0f}s", flush=True)


def _run(args) -> int:
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(), args.dataset)
    pipeline.run_all(device=args.device, progress=_show_epoch)  # each version audited as Dagster's checks do
    return _show(args)


def _train(args) -> int:
    from synth_assets.pipes import train_in_pipes_process, under_pipes

    if under_pipes():
        return train_in_pipes_process()
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.releases import new_version

    pipeline = DatasetPipeline(load_project(), args.dataset)
    version = new_version()
    result = pipeline.train(device=args.device, progress=_show_epoch, version=version)  # audited, then published
    print(f"{args.dataset}/model: published {version} ({result.epochs} epochs, {result.stopped_because})")
    return 0


def _versions(args) -> int:
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(), args.dataset)
    for stage in pipeline.paths.VERSIONED:
        pipeline.paths.pull_versions(stage)
        releases = pipeline.paths.releases(stage)
        current = releases.current_version()
        published = {h["version"]: h["published_at"] for h in releases.history()}
        print(f"{stage} ({pipeline.paths.uri(stage)}):")
        if not releases.versions():
            print("    (none yet)")
        for version in releases.versions():
            note = f"published {published[version]}" if version in published else "never published (failed its audit?)"
            print(f"  {'*' if version == current else ' '} {version}  {note}")
    return 0


def _rollback(args) -> int:
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(), args.dataset)
    before = pipeline.paths.releases(args.stage).current_version()
    now = pipeline.rollback(args.stage, args.to)
    print(f"{args.dataset}/{args.stage}: published {now} (was {before})")
    return 0


def _show(args) -> int:
    from synth_assets import files
    from synth_assets.stages.report import protection_words, score
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline

    pipeline = DatasetPipeline(load_project(), args.dataset)
    releases = pipeline.paths.releases("synthetic")
    pipeline.paths.pull("synthetic")
    published = releases.current_version()
    if published is None:
        print(f"no synthetic tables published yet: materialize {args.dataset}/synthetic")
    for table in pipeline.spec.tables if published else []:  # the path consumers read, stable across versions
        print(f"synthetic table '{table}': {pipeline.paths.published_uri('synthetic', f'{table}.parquet')} "
              f"(version {published})")
    if pipeline.paths.stats.is_file():
        print(f"privacy: {protection_words(pipeline.protection()).replace('**', '')}")
    scores_path = pipeline.paths.quality / "scores.json"
    if not scores_path.is_file():
        print(f"no quality report yet: materialize {args.dataset}/quality")
        return 1
    for table, q in files.read_json(scores_path).items():
        # the discriminator is absent from reports written before it existed; NaN: not computed, for a reason given
        print(f"quality '{table}': accuracy {score(q['accuracy'])} (holdout ceiling {score(q['holdout_accuracy'])}), "
              f"univariate {score(q['univariate'])}, bivariate {score(q['bivariate'])}, DCR share "
              f"{score(q['dcr_share'])}, discriminator AUC {score(q.get('discriminator_auc'))}")
        for figure, why in q.get("unavailable", {}).items():
            print(f"  not measured: {figure}: {why}")
        figures = q.get("privacy")
        if figures:  # absent from reports written before the privacy evaluation
            attributes = "".join(f", infer {key.split('/')[1]} {value:.3f} (holdout {figures[key + '/holdout']:.3f})"
                                 for key, value in figures.items()
                                 if key.startswith("attribute_inference/") and key.count("/") == 1)
            print(f"privacy '{table}': DCR share {figures['dcr_share']:.3f} against its floor {figures['dcr_floor']:.3f} "
                  f"(excess {figures['dcr_excess']:+.3f} ± {figures['dcr_excess_noise']:.3f}), membership AUC "
                  f"{figures['membership_auc']:.3f}, exact copies {figures['exact_copy_share']:.1%} (holdout "
                  f"{figures['holdout_exact_copy_share']:.1%}){attributes}")
    print(f"report: {pipeline.report_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
