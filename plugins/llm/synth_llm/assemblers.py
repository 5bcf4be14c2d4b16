"""Training examples from tokenized samples, as NeMo Safe Synthesizer's assembler builds them.

Each sample is one segment: BOS, its prompt, its output, EOS. Only the output and EOS carry loss; BOS, the
prompt and padding are labelled -100. Three ways to lay segments into examples of `window` tokens:
- tabular: shuffle the segments and pack as many as fit into each example;
- grouped: one segment per example;
- sequential: segments in data order as one stream, cut every `window` tokens, so a long sample continues in
  the next example.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synth_assets.plugin_api import SynthError

IGNORE = -100  # the label cross-entropy skips


@dataclass(frozen=True)
class Segment:
    prompt: list[int]
    output: list[int]
    key: object = None  # the root key of its sample, for errors

    def tokens(self, bos: int, eos: int) -> tuple[list[int], list[int]]:
        ids = [bos, *self.prompt, *self.output, eos]
        labels = [IGNORE] * (1 + len(self.prompt)) + [*self.output, eos]
        return ids, labels


@dataclass
class Examples:
    input_ids: np.ndarray  # (n, window) int64
    labels: np.ndarray  # (n, window), IGNORE where no loss
    attention_mask: np.ndarray  # (n, window), 0 on padding

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def loss_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def assemble(segments: list[Segment], how: str, window: int, *, bos: int, eos: int, pad: int,
             rng: np.random.Generator | None = None, table: str | None = None) -> Examples:
    pairs = [s.tokens(bos, eos) for s in segments]
    if how in ("tabular", "grouped"):
        for segment, (ids, _) in zip(segments, pairs):
            if len(ids) > window:
                raise SynthError(f"the sample of root key {segment.key!r} takes {len(ids)} tokens, more than the "
                                 f"context window of {window}", table=table,
                                 hint="raise train.context_window, or use train.assembler: sequential")
    if how == "tabular":
        rng = rng or np.random.default_rng(0)
        packed, current, used = [], [], 0
        for i in rng.permutation(len(pairs)):
            if used + len(pairs[i][0]) > window:
                packed.append(current)
                current, used = [], 0
            current.append(i)
            used += len(pairs[i][0])
        if current:
            packed.append(current)
        # The sample that did not fit in one example opens the next, so samples that open an example would be
        # longer than most (on rwm5yr, persons with 5 records opened 40% of them against their 27% share). Those
        # are the only samples the model sees at the positions generation starts from: it learned to write too
        # many records. Each example's samples are shuffled, so any of them may open it.
        rows = []
        for members in packed:
            members = [members[j] for j in rng.permutation(len(members))]
            rows.append(([t for i in members for t in pairs[i][0]], [t for i in members for t in pairs[i][1]]))
    elif how == "grouped":
        rows = pairs
    elif how == "sequential":
        stream = [t for ids, _ in pairs for t in ids]
        labels = [t for _, lab in pairs for t in lab]
        rows = [(stream[i : i + window], labels[i : i + window]) for i in range(0, len(stream), window)]
    else:
        raise ValueError(f"unknown assembler {how!r}")
    n = len(rows)
    input_ids = np.full((n, window), pad, dtype=np.int64)
    label_array = np.full((n, window), IGNORE, dtype=np.int64)
    mask = np.zeros((n, window), dtype=np.int64)
    for r, (ids, labels) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        label_array[r, : len(labels)] = labels
        mask[r, : len(ids)] = 1
    return Examples(input_ids, label_array, mask)
