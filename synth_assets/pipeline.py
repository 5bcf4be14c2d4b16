"""One dataset's stages, run in order, each reading its inputs from and writing its output to
`$SYNTH_HOME/<dataset>/`. The Dagster assets and the command line both call these; nothing here
imports Dagster."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import pandas as pd

from synth_assets import files, storage
from synth_assets.audit import Check, audit_model, audit_synthetic, failures
from synth_assets.backend import (DRAW_SECONDS, SEED_PARENT, Backend, GenerateRequest, ProgressCallback, TrainRequest,
                                  TrainResult)
from synth_assets.seed_records import link_records
from synth_assets.config import DP_OPTION, DatasetSpec, Project
from synth_assets.errors import IncompatibleModel, SynthError
from synth_assets.plugins import get_backend
from synth_assets.parts import (PLAN, REPORT as PART_REPORT, STALE_SECONDS, PartsFolder, Plan, join_parts,
                                plan_parts, subjects_per_part)
from synth_assets.releases import new_version
from synth_assets.privacy_budget import LEDGER_FILE, PrivacyLedger
from synth_assets.stages.privacy import PrivacyFigures, PrivacyGate, evaluate_privacy
from synth_assets.stages.quality import TableQuality, dcr, evaluate_table, measured, synthetic_sample
from synth_assets.stages.charts import table_charts
from synth_assets.stages.report import chart_file, render_report
from synth_assets.stages.schema import restore_tables
from synth_assets.stages.sequence_quality import evaluate_sequences
from synth_assets.stages.split import PARTITIONS, Split, context_key, split_tables
from synth_assets.stages.stats import DatasetStats, compute_stats
from synth_assets.options import GenerateOptions, TrainOptions
from synth_assets.tables import check_keys, read_source, read_sources
from synth_assets.text_columns import (TEXT_MODEL_DIR, filter_written_texts, for_backend, keep_seeded_texts,
                                       seed_without_texts, split_for_backend, text_columns, text_filters,
                                       text_model_for, text_time_share, texts_written_by, train_text_model,
                                       with_empty_texts, write_texts)


SEEDED_FILE = "generation.json"  # beside the synthetic tables: which columns came from seed data


@dataclass
class Generated:
    """A generation written as version `version` (`folder`): its rows per table, a preview, its timings."""

    rows: dict[str, int]
    folder: Path
    seconds: float
    report: dict = field(default_factory=dict)  # the backend's own figures (GenerateRequest.report)
    version: str = ""  # where the tables were written: <dataset>/synthetic/<version>/
    draw_seconds: float | None = None  # of `seconds`, the backend's drawing (the rest: loading, restoring, checks)
    parts: int = 1

    @property
    def tables(self) -> dict[str, pd.DataFrame]:
        """The tables, read back whole from their Parquet files (for a large sample, read those in batches)."""
        return {t: files.read_parquet(self.folder / f"{t}.parquet") for t in self.rows}

    def preview(self, rows: int = 10) -> dict[str, pd.DataFrame]:
        """The first `rows` rows of each table, without reading the rest."""
        return {t: next(files.iter_parquet(self.folder / f"{t}.parquet", batch_rows=rows)) for t in self.rows}


class DatasetPipeline:
    def __init__(self, project: Project, dataset: str):
        self.project = project
        self.name = dataset
        self.spec: DatasetSpec = project.dataset(dataset)
        self.paths = storage.dataset_paths(project, dataset)
        why = self.spec.unsupported_shape(self.backend)
        if why:
            raise SynthError(why, dataset=dataset)

    @property
    def backend(self) -> Backend:
        return get_backend(self.spec.backend, dataset=self.name)

    def _need(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise SynthError(
                f"the '{stage}' output is missing ({path})", dataset=self.name,
                hint=f"materialize {self.name}/{stage} first",
            )
        return path

    # split ---------------------------------------------------------------------------------------
    def split(self, frames: dict[str, pd.DataFrame] | None = None) -> Split:
        """Split the source tables, or `frames` (table -> DataFrame) when given (the Python API's data)."""
        if frames is None:
            sources = {t: self.project.source_path(self.name, t) for t in self.spec.tables}
            frames = read_sources(self.spec, sources, dataset=self.name)
        else:
            check_keys(self.spec, frames, dataset=self.name)
            frames = {name: _mixed_objects_as_text(df) for name, df in frames.items()}
        split = split_tables(self.spec, frames)
        with self.paths.output("split") as tmp:
            for partition in PARTITIONS:
                for table, df in split.partition(partition).items():
                    files.write_parquet(df, tmp / partition / f"{table}.parquet")
        return split

    def load_split(self) -> Split:
        self._need(self.paths.split, "split")
        frames = {
            partition: {t: files.read_parquet(self.paths.split_table(partition, t)) for t in self.spec.tables}
            for partition in PARTITIONS
        }
        return Split(**frames)

    # stats ---------------------------------------------------------------------------------------
    def stats(self) -> DatasetStats:
        stats = compute_stats(self.spec, self.load_split().train, dataset=self.name,
                              hints=self.backend.encoding_hints())
        with self.paths.output("stats.json") as tmp:
            files.write_json(stats.model_dump(mode="json"), tmp)
        return stats

    def load_stats(self) -> DatasetStats:
        return DatasetStats.model_validate(files.read_json(self._need(self.paths.stats, "stats")))

    # encoded -------------------------------------------------------------------------------------
    def encode(self) -> dict:
        split, stats = self.load_split(), self.load_stats()
        if not self.backend.writes_text:
            split, stats = split_for_backend(split, stats), for_backend(stats)
        with self.paths.output("encoded") as tmp:
            info = self.backend.encode(split, stats, tmp)
        return info

    # model ---------------------------------------------------------------------------------------
    def train(
        self, options: TrainOptions | None = None, device: str = "auto", progress: ProgressCallback | None = None,
        *, version: str | None = None, publish: bool = True, reset_if_incompatible: bool = False,
        warn: Callable[[str], None] | None = None,
    ) -> TrainResult:
        """Train with `options` (the backend's TrainOptions; default: synth.yaml's `train`) into a new model
        version, audited and published when it passes (`release`); with `publish` False a candidate only, for the
        caller to `release`.
        With `reset_if_incompatible`, a published model that no longer fits the data (reuse after a new category,
        say) makes way for a new one, with a `warn`ing, instead of failing."""
        options = options or self.spec.train
        self.backend.check_device(device)
        stats = self.load_stats()
        encoded = self._need(self.paths.encoded, "encoded")
        version = version or new_version()
        releases = self.paths.releases("model")
        self.paths.pull("model")  # the published model, for model_state reuse
        published = releases.current()
        text_share = 0.0 if self.backend.writes_text else text_time_share(stats, options)
        if text_share:
            text_model_for(stats, options)  # a missing or unknown text model fails before any training
        backend_options = options.model_copy(update={"max_training_time": options.max_training_time * (1 - text_share)})
        request = TrainRequest(options=backend_options, device=device, progress=progress, previous_model=published,
                               resume_dir=self.paths.root / "model.partial")
        started = time.perf_counter()
        try:
            with self.paths.new_version("model", version) as tmp:  # pushed for the audit, wherever it runs
                result = self.backend.train(encoded, stats if self.backend.writes_text else for_backend(stats),
                                            request, tmp)
                if text_share:  # its share of the budget, and what the backend left of its own
                    seconds = max(text_share * options.max_training_time * 60,
                                  options.max_training_time * 60 - (time.perf_counter() - started))
                    result.settings["text_model"] = train_text_model(
                        self.load_split(), stats, options, tmp / TEXT_MODEL_DIR, device=device, seconds=seconds,
                        progress=progress)
        except IncompatibleModel as exc:
            if not reset_if_incompatible or options.model_state == "reset":
                raise
            if warn is not None:
                warn(f"{exc.message}: training a new model instead")
            return self.train(options.model_copy(update={"model_state": "reset"}), device, progress,
                              version=version, publish=publish)
        result.model_state = options.model_state
        if publish:
            self.release_or_fail("model", version, result, dp=getattr(options, DP_OPTION, None))
        return result

    # publishing: write, audit, publish ----------------------------------------------------------------
    def release(self, stage: str, version: str, result, dp=None) -> list[Check]:
        """Audit candidate `version` of `stage` (`result`: its TrainResult or Generated) and publish it when every
        check passes: the one way a new version reaches consumers, for Dagster's assets, the command line and the
        Python API alike. `dp`: the DifferentialPrivacy section a model was trained with (None: without DP).
        Returns the checks."""
        if stage == "model":
            checks = audit_model(self.paths.version_folder("model", version), result, dp)
        else:
            checks = audit_synthetic(self, version)
        if all(check.passed for check in checks):
            self._publish(stage, version)
        return checks

    def release_or_fail(self, stage: str, version: str, result, dp=None) -> list[Check]:
        """`release`, raising what failed when the audit does."""
        checks = self.release(stage, version, result, dp)
        problems = failures(checks)
        if problems:
            still = self.paths.releases(stage).current_version()
            raise SynthError(f"{stage} version {version} failed its audit ({'; '.join(problems)}); consumers stay "
                             f"on {still or 'nothing (no release yet)'}", dataset=self.name)
        return checks

    def _publish(self, stage: str, version: str, reason: str = "audit passed") -> None:
        """Make `version` of `stage` (model, synthetic) the one consumers and later stages read."""
        keep = self.spec.publish.keep_versions
        self.paths.pull_history(stage)
        self.paths.version_folder(stage, version)
        self.paths.releases(stage).publish(version, keep=keep, reason=reason)
        self.paths.push_pointer(stage, keep)

    def rollback(self, stage: str, to: str | None = None) -> str:
        """Publish `to`, or the release before the current one, of `stage`; returns the version published."""
        keep = self.spec.publish.keep_versions
        self.paths.pull_versions(stage)
        version = self.paths.releases(stage).rollback(to, keep=keep)
        self.paths.push_pointer(stage, keep)
        return version

    # synthetic -----------------------------------------------------------------------------------
    def generate(self, options: GenerateOptions | None = None, device: str = "auto",
                 seed_data: pd.DataFrame | None = None, engine=None, *, version: str | None = None,
                 publish: bool = True) -> Generated:
        """Generate with `options` (the backend's GenerateOptions; default: synth.yaml's `generate`) and write
        the synthetic tables as a new version, audited and published when it passes (`release`; with `publish`
        False a candidate only). `seed_data` (a frame)
        takes the place of the file named by `options.seed_data`. A sample above `parts.rows` is drawn in parts,
        one after another here (as separate steps under Dagster)."""
        started = time.perf_counter()
        version = version or new_version()
        job = files.temporary_name(version)  # if this process dies, the next generation sweeps its parts
        # one process draws every part: they stay in its scratch folder, never uploaded
        plan = self.plan_generation(options, seed_data=seed_data, job=job, version=version, share=False)
        try:
            for part in plan.parts:
                self.generate_part(job, part.index, device=device, engine=engine, seed_data=seed_data, share=False)
            return self.join_parts(job, publish=publish, started=started, share=False)
        finally:
            self.parts_folder(job).remove()

    # generation in parts (synth_assets.parts) -------------------------------------------------------
    def parts_folder(self, job: str) -> PartsFolder:
        return PartsFolder(self.paths.root / "synthetic", job)

    def plan_generation(self, options: GenerateOptions | None = None, *, seed_data: pd.DataFrame | None = None,
                        job: str, version: str, share: bool = True) -> Plan:
        """Check the request and split it into parts (`parts.rows` rows at most, a subject counting with its
        records: `subjects_per_part`), saved for the part steps under `job` (a run's id, or the version)."""
        options = options or self.spec.generate
        if seed_data is None:
            seed_data = self._read_seed_records(options, self._read_seed_data(options))[0]
        self.backend.check_request(options, seed_data_given=seed_data is not None, dataset=self.name)
        self._need(self.paths.model, "model")
        subject = next(iter(self.spec.tables))  # seed rows condition the first (root) table
        stats = self.load_stats()
        total = len(seed_data) if seed_data is not None else options.sample_size or stats.tables[subject].rows
        plan = Plan(version=version, options=options.model_dump(mode="json"),
                    parts=plan_parts(total, subjects_per_part(stats, subject, self.spec.parts.rows), options.seed),
                    seeded_columns={subject: [str(c) for c in seed_data.columns]} if seed_data is not None else {})
        folder = self.parts_folder(job)
        folder.write_plan(plan)
        if share:
            self.paths.sweep_stale_parts(folder.base, PLAN, STALE_SECONDS)
            self.paths.push_parts(folder.plan_path)
        return plan

    def generate_part(self, job: str, index: int, device: str = "auto", engine=None,
                      seed_data: pd.DataFrame | None = None, share: bool = True) -> dict:
        """Draw part `index` of the plan saved under `job` into its folder; returns its report (rows per table,
        seconds, the backend's figures)."""
        folder = self.parts_folder(job)
        if share:
            self.paths.pull_parts(folder.plan_path)
        plan = folder.plan()
        part = plan.parts[index]
        options = self.backend.GenerateOptions.model_validate(plan.options)
        seed_records = None
        if seed_data is None:
            seed_data, seed_records = self._read_seed_records(options, self._read_seed_data(options))
        if len(plan.parts) > 1:
            if seed_data is not None:
                first = part.first_seed_row
                seed_data = seed_data.iloc[first: first + part.rows].reset_index(drop=True)
                seed_records = {table: records[records[SEED_PARENT].between(first, first + part.rows - 1)].assign(
                    **{SEED_PARENT: lambda r: r[SEED_PARENT] - first}) for table, records in (seed_records or {}).items()}
            else:
                options = options.model_copy(update={"sample_size": part.rows})
            options = options.model_copy(update={"seed": part.seed})
        started = time.perf_counter()
        backend_report: dict = {}
        tables = self.generate_frames(options, device=device, seed_data=seed_data, report=backend_report, engine=engine,
                                      seed_records=seed_records or None)
        report = {"rows": {t: len(df) for t, df in tables.items()}, "seconds": time.perf_counter() - started,
                  "draw_seconds": backend_report.pop(DRAW_SECONDS, None), "backend": backend_report}
        with self.paths.shared_part(folder.part(part), share) as tmp:
            for name, df in tables.items():
                files.write_parquet(df, tmp / f"{name}.parquet")
            files.write_json(report, tmp / PART_REPORT)
        return report

    def join_parts(self, job: str, *, publish: bool = True, started: float | None = None,
                   share: bool = True) -> Generated:
        """Join the parts generated under `job` into their version (audited and published when it passes, unless
        `publish` is False)."""
        folder = self.parts_folder(job)
        if share:
            self.paths.pull_parts(folder.plan_path)
        plan = folder.plan()
        if share:
            self.paths.pull_parts(*(folder.part(p) for p in plan.parts))
        missing = [p.name for p in plan.parts if not (folder.part(p) / PART_REPORT).is_file()]
        if missing:
            raise SynthError(f"generation parts {', '.join(missing[:5])} of {len(plan.parts)} are missing",
                             dataset=self.name, hint="generate those parts (materialize synthetic again)")
        reports = folder.reports(plan)
        stats = self.load_stats()
        with self.paths.new_version("synthetic", plan.version) as tmp:
            rows = join_parts([folder.part(p) for p in plan.parts], stats, tmp)
            backend = reports[0]["backend"] if len(reports) == 1 else {
                "parts": len(reports), "part_reports": [r["backend"] for r in reports]}
            files.write_json({"seeded_columns": plan.seeded_columns, "backend_report": backend,
                                "parts": [{"index": p.index, "seed": p.seed, **r} for p, r in zip(plan.parts, reports)]},
                               tmp / SEEDED_FILE)
        if share:
            self.paths.remove_parts(folder.root)
        folder.remove()
        draws = [r["draw_seconds"] for r in reports]
        seconds = time.perf_counter() - started if started is not None else sum(r["seconds"] for r in reports)
        generated = Generated(rows=rows, folder=self.paths.releases("synthetic").path(plan.version), seconds=seconds,
                              report=backend, version=plan.version, parts=len(plan.parts),
                              draw_seconds=None if None in draws else sum(draws))
        if publish:
            self.release_or_fail("synthetic", plan.version, generated)
        return generated

    def seeded_columns(self, version: str | None = None) -> dict[str, frozenset[str]]:
        """Per table, the columns a generation (the published one, or `version`) took from seed data (the
        user's values, as given)."""
        path = self.paths.synthetic_folder(version) / SEEDED_FILE
        seeded = files.read_json(path)["seeded_columns"] if path.is_file() else {}
        return {table: frozenset(columns) for table, columns in seeded.items()}

    def _read_seed_data(self, options: GenerateOptions) -> pd.DataFrame | None:
        if not options.seed_data:
            return None
        return read_source(self.project.relative_path(options.seed_data), dataset=self.name,
                           table=f"seed data of {self.name}")

    def _read_seed_records(self, options: GenerateOptions, seed_data: pd.DataFrame | None
                           ) -> tuple[pd.DataFrame | None, dict[str, pd.DataFrame] | None]:
        """generate.seed_records' files linked to the seed rows (seed_records.link_records), and the seed rows."""
        if not options.seed_records:
            return seed_data, None
        if seed_data is None:
            raise SynthError("generate.seed_records continue the records of seed_data's subjects", dataset=self.name,
                             hint="set generate.seed_data to the subjects, with their keys")
        records = {table: read_source(self.project.relative_path(path), dataset=self.name,
                                      table=f"seed records of {table}") for table, path in options.seed_records.items()}
        return link_records(self.spec, seed_data, records, dataset=self.name)

    def generate_frames(self, options: GenerateOptions | None = None, device: str = "auto",
                        seed_data: pd.DataFrame | None = None, report: dict | None = None,
                        engine=None, seed_records: dict[str, pd.DataFrame] | None = None) -> dict[str, pd.DataFrame]:
        """The synthetic tables, in the source's schema with fresh keys, without writing them. `report` receives
        the backend's own figures; `engine` holds the backend's engine settings (its EngineOptions);
        `seed_records` the first records of seed_data's subjects to continue (GenerateRequest.seed_records)."""
        options = options or self.spec.generate
        self.backend.check_request(options, seed_data_given=seed_data is not None, dataset=self.name)
        if (seed_records or options.seed_records) and not self.backend.capabilities.seed_records:
            raise SynthError(f"backend '{self.backend.name}' does not continue given records", dataset=self.name,
                             hint="give subjects only, or choose a backend that supports seed records")
        if (seed_records or options.seed_records) and len(self.spec.tables) == 1:  # never silence
            raise SynthError("seed records are the records of child tables, and this dataset has one table",
                             dataset=self.name, hint="give the rows as seed_data")
        self.backend.check_device(device)
        stats = self.load_stats()
        model = self._need(self.paths.model, "model")
        if seed_data is None:
            seed_data = self._read_seed_data(options)
            if seed_records is None:
                seed_data, seed_records = self._read_seed_records(options, seed_data)
        encoded = lambda: self.paths.encoded  # noqa: E731  # fetched only by a backend that asks for it
        filters = {}
        if self.backend.writes_text:
            # with DP what is released depends on the private model and stats alone: no look at training texts
            private = stats.privacy.mode == "differential_privacy"
            filters = text_filters(stats, None if private else self.load_split().train) if text_columns(stats) else {}
            request = GenerateRequest(options=options, seed_data=seed_data, device=device, engine=engine,
                                      encoded=encoded, seed_records=seed_records, text_filters=filters)
            raw = self.backend.generate(model, stats, request)
        else:  # the backend writes the other columns, a text model the texts (text_columns.py)
            seed_data, seeded_texts = seed_without_texts(seed_data, stats)
            request = GenerateRequest(options=options, seed_data=seed_data, device=device, engine=engine,
                                      encoded=encoded, seed_records=seed_records)
            raw = with_empty_texts(self.backend.generate(model, for_backend(stats), request), stats)
        if report is not None:
            report.update(request.report)
        tables = restore_tables(raw, stats, dataset=self.name)
        if filters:
            tables = filter_written_texts(tables, stats, filters, report=report)
            tables = keep_seeded_texts(tables, stats, seed_without_texts(seed_data, stats)[1])
        if not self.backend.writes_text and text_columns(stats):
            tables = write_texts(tables, stats, model, options, training=self.load_split().train, device=device,
                                 report=report)
            tables = keep_seeded_texts(tables, stats, seeded_texts)
        return tables

    def load_synthetic(self, version: str | None = None, *, max_rows: int | None = None) -> dict[str, pd.DataFrame]:
        """The published synthetic tables, or those of `version` (a candidate under audit). With `max_rows`, a
        table with more rows comes as the seeded sample of them the DCR share judges (`synthetic_sample`)."""
        self._need(self.paths.synthetic_folder(version), "synthetic")
        tables = {}
        for table in self.spec.tables:
            path = self.paths.synthetic_table(table, version)
            if max_rows is None:
                tables[table] = files.read_parquet(path)
            else:
                tables[table] = files.read_parquet_rows(path, synthetic_sample(files.parquet_rows(path), max_rows))
        return tables

    def privacy_figures(self, version: str | None = None) -> dict[str, tuple[PrivacyFigures, float]]:
        """Per table, the privacy figures of the synthetic tables (the published version's, or `version`'s) against
        real unseen data, and quality.py's DCR share (for quality.max_dcr_share): what the privacy gate judges
        and the report shows, from the same seeded samples. A flat table reads only the rows judged; a tree
        reads whole tables (a subject's records must be whole)."""
        split, stats = self.load_split(), self.load_stats()
        quality = self.spec.quality
        flat = len(stats.tables) == 1
        synthetic = self.load_synthetic(version, max_rows=quality.max_rows if flat else None)
        out = {}
        for name, table in stats.tables.items():
            if not table.columns:  # keys only: fresh keys give nothing away; its subjects are judged in its children
                continue
            sensitive = [c for c, column in self.spec.tables[name].columns.items() if column.sensitive]
            figures = evaluate_privacy(stats, name, split.train, split.validation, synthetic, sensitive=sensitive,
                                       max_rows=quality.max_rows, draws=quality.privacy_draws)
            share = dcr(list(table.columns.values()), split.train[name], split.validation[name], synthetic[name],
                        max_rows=quality.max_rows)[0]
            out[name] = (figures, share)
        return out

    def protection(self, version: str | None = None) -> dict:
        """How the data behind the published model (or model `version`) are protected: the stats' value
        protection and, with differential privacy, the model's ε and δ and the budget."""
        stats = self.load_stats().privacy
        out = {"mode": stats.mode, "rare_threshold": stats.rare_threshold}
        if stats.mode == "differential_privacy":
            dp = self.spec.differential_privacy
            out.update(epsilon_value_protection=stats.epsilon, max_epsilon=dp.max_epsilon if dp else None)
            folder = self.paths.version_folder("model", version) if version else self.paths.model
            ledger = folder / LEDGER_FILE if folder is not None else None
            if ledger is not None and ledger.is_file():
                out.update(PrivacyLedger.model_validate_json(ledger.read_text()).summary())
        return out

    def privacy_gate(self) -> PrivacyGate:
        quality = self.spec.quality
        return PrivacyGate(max_dcr_share=quality.max_dcr_share, max_dcr_excess=quality.max_dcr_excess,
                           max_membership_auc=quality.max_membership_auc, max_copy_excess=quality.max_copy_excess,
                           max_text_copy_excess=quality.max_text_copy_excess)

    def dcr_shares(self, version: str | None = None) -> dict[str, float]:
        """Per table, the share of synthetic rows (the published version's, or `version`'s) closer to a training
        row than to a holdout row: what the privacy gate judges before a version is published. Only the rows
        the share judges are read."""
        split, stats = self.load_split(), self.load_stats()
        synthetic = self.load_synthetic(version, max_rows=self.spec.quality.max_rows)
        return {name: dcr(list(table.columns.values()), split.train[name], split.validation[name], synthetic[name],
                          max_rows=self.spec.quality.max_rows)[0]
                for name, table in stats.tables.items()}

    # quality -------------------------------------------------------------------------------------
    def quality(self) -> tuple[dict[str, TableQuality], str]:
        split, stats = self.load_split(), self.load_stats()
        # a flat table is scored on samples of max_rows rows, so only those are read; the sequence scores of a
        # tree need every subject's records whole
        flat = len(stats.tables) == 1
        synthetic = self.load_synthetic(max_rows=self.spec.quality.max_rows if flat else None)
        results = {
            name: evaluate_table(
                stats.tables[name], split.train[name], split.validation[name], synthetic[name],
                max_rows=self.spec.quality.max_rows,
            )
            for name in stats.tables
        }
        for name, table in stats.tables.items():
            context = context_key(name, self.spec.tables[name])
            if context is not None:
                results[name].sequence = measured("sequences", lambda: evaluate_sequences(
                    table, stats.tables[context.references], split.train, split.validation, synthetic,
                    max_parents=self.spec.quality.max_rows), results[name].unavailable, default=None)
        privacy = measured("privacy", self.privacy_figures, results[next(iter(results))].unavailable, default={})
        for name, (figures, _) in privacy.items():
            results[name].privacy = figures.summary()
        charts = {name: measured("charts", lambda: table_charts(
                      stats.tables[name], split.train[name], synthetic[name], split.validation[name], results[name],
                      max_rows=self.spec.quality.max_rows), results[name].unavailable, default={})
                  for name in stats.tables}
        report = render_report(self.name, self.spec.backend, results, self.spec.quality.max_dcr_share,
                               self.protection(), drawn={name: set(pictures) for name, pictures in charts.items()},
                               texts_by=texts_written_by(stats, self.backend, self.spec.train))
        with self.paths.output("quality") as tmp:
            files.write_text(report, tmp / "report.md")
            for name, pictures in charts.items():
                for chart, png in pictures.items():
                    (tmp / chart_file(name, chart)).write_bytes(png)
            files.write_json({n: q.model_dump(mode="json") for n, q in results.items()}, tmp / "scores.json")
        return results, report

    def report_path(self) -> Path:
        return self.paths.quality / "report.md"

    def run_all(self, device: str = "auto", progress: ProgressCallback | None = None) -> dict[str, TableQuality]:
        """Every stage in order: what `python -m synth_assets run <dataset>` does outside Dagster. A new model or
        synthetic version is published only when it passes the audit the Dagster assets' checks run."""
        self.split()
        self.stats()
        self.encode()
        self.train(device=device, progress=progress)
        self.generate(device=device)
        return self.quality()[0]


def _mixed_objects_as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding values of several types (True beside "x", 3 beside "a": only in-memory frames
    have them) as text, which Parquet can store and the stats treat them as anyway; nulls stay null."""
    mixed = [c for c in df.columns if df[c].dtype == object
             and pd.api.types.infer_dtype(df[c], skipna=True) in ("mixed", "mixed-integer")]
    if not mixed:
        return df
    return df.assign(**{str(c): df[c].map(lambda v: v if v is None or v != v else str(v)) for c in mixed})

