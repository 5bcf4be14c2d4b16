"""The optimiser both backends train with (synth_assets/optimizer.py)."""

import torch

from synth_assets.plugin_api import adamw


def test_adamw_is_fused_on_the_cpu_and_steps_as_the_unfused_one_does():
    def trained(make):
        torch.manual_seed(0)
        weights = [torch.nn.Parameter(torch.randn(40, 8)), torch.nn.Parameter(torch.randn(8))]
        optimizer = make(weights)
        for step in range(30):
            for w in weights:
                w.grad = torch.sin(w.detach() * (step + 1))
            optimizer.step()
        return optimizer, torch.cat([w.detach().flatten() for w in weights])

    fused, ours = trained(lambda w: adamw(w, lr=1e-2, weight_decay=1e-4))
    _, plain = trained(lambda w: torch.optim.AdamW(w, lr=1e-2, weight_decay=1e-4, foreach=False))
    assert fused.defaults["fused"] is True  # one kernel a step, not ten small operations per tensor
    assert torch.allclose(ours, plain, atol=1e-5) and not torch.equal(ours, trained(lambda w: adamw(w, 0.0, 0.0))[1])
