"""A third-party text model as small as one can be: it keeps how often each kept word appears and how many
words a text has, and writes texts of words drawn from those counts. No training text is stored."""

import json
from collections import Counter

import numpy as np

from synth_assets.plugin_api import TextModel, TextTrainResult, words


class PhrasebookTextModel(TextModel):
    name = "phrasebook"
    description = "words drawn from their training counts"

    def train(self, request, out_dir):
        counts, lengths = Counter(), Counter()
        for example in request.train:
            if example.text is not None:
                held = [w for w in words(example.text) if w in request.words]
                counts.update(held)
                lengths[len(held)] += 1
        (out_dir / "phrasebook.json").write_text(json.dumps({"words": counts, "lengths": lengths}))
        return TextTrainResult(epochs=1, seconds=0.0, stopped_because="max epochs", parameters=len(counts),
                               validation_loss=0.0)

    def generate(self, model_dir, request):
        book = json.loads((model_dir / "phrasebook.json").read_text())
        rng = np.random.default_rng(request.seed)
        vocabulary = [w for w in book["words"] if not request.words or w in request.words]
        p = np.array([book["words"][w] for w in vocabulary], dtype=float)
        sizes, shares = zip(*((int(k), v) for k, v in book["lengths"].items()))
        n = rng.choice(sizes, size=len(request.prompts), p=np.array(shares) / sum(shares))
        return [" ".join(rng.choice(vocabulary, size=max(int(k), 1), p=p / p.sum()))[: request.max_length]
                for k in n]
