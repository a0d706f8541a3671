import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import SMOKE, make_tiny_data
from ignite.engine import Events
from torch.nn import functional as F

from gandistill.config import default_loops, load_config, resolve
from gandistill.coreset.baselines import build_baseline
from gandistill.distillation import monitor
from gandistill.distillation import step as distillation_step
from gandistill.distillation.init import invert
from gandistill.distillation.loop import Distiller
from gandistill.distillation.matching import (
    cos_distance,
    dc_distance,
    mse_distance,
    per_class_gradients,
)
from gandistill.distillation.objectives import discrimination_loss, krr_loss, layerwise_dm
from gandistill.errors import ArtifactError, ConfigError, DataError
from gandistill.files import DistilledSet, load_generator_checkpoint
from gandistill.models import ConvNet, to_gan_range
from gandistill.runtime import step_generator


@pytest.fixture(scope="module")
def tiny():
    return make_tiny_data(per_class=6)


def _cfg(tmp_path, *overrides):
    return load_config(SMOKE, [f"cache_dir={tmp_path}", *overrides])


def _grads(seed):
    gen = torch.Generator().manual_seed(seed)
    return {
        "w": torch.randn(3, 4, 5, generator=gen),  # (classes, out, in): counted
        "b": torch.randn(3, 4, generator=gen),  # 1-D per class: ignored by dc
    }


def test_distances_zero_for_identical_gradients():
    g = _grads(0)
    for distance in (dc_distance, mse_distance, cos_distance):
        assert distance(g, g).abs() < 1e-5
        assert distance(g, _grads(1)) > 0.1


def test_dc_distance_ignores_one_dimensional_parameters():
    g, h = _grads(0), _grads(0)
    h["b"] = h["b"] * -5.0
    assert dc_distance(g, h).abs() < 1e-5
    assert mse_distance(g, h) > 0


def test_dc_distance_is_rowwise_cosine():
    g = _grads(0)
    scaled = {"w": g["w"] * (torch.rand(3, 4, 1) * 3 + 0.1), "b": g["b"]}  # positive row scaling
    assert dc_distance(g, scaled).abs() < 1e-4


def test_schedule_rule():
    assert default_loops(1) == (1, 1)
    assert default_loops(10) == (10, 50)
    assert default_loops(50) == (50, 10)
    assert default_loops(5) == (5, 23)  # 1 + (50 - 1) * 4 / 9, between IPC 1 and 10
    assert default_loops(15) == (15, 38)  # halfway between 50 (IPC 10) and 25 (IPC 20)
    assert default_loops(100) == (50, 10)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_per_class_gradients_match_autograd_per_class(mode):
    net = ConvNet(3, 1, 28, width=4)
    params = {k: v.detach() for k, v in net.named_parameters()}
    x = torch.randn(3, 5, 1, 28, 28, requires_grad=True)
    y = torch.arange(3).unsqueeze(1).expand(3, 5)
    batched, emb = per_class_gradients(net, params, x, y, mode, create_graph=True, embeddings=True)
    for c in range(3):
        expected = torch.autograd.grad(F.cross_entropy(net(x[c]), y[c]), list(net.parameters()))
        for (name, _), g in zip(net.named_parameters(), expected, strict=True):
            assert torch.allclose(batched[name][c], g, atol=1e-5), name
        assert torch.allclose(emb[c], net.embed(x[c]), atol=1e-5)  # from the same forward
    # the graph reaches the inputs (the synthetic side is differentiated twice), embeddings too
    sum(g.pow(2).sum() for g in batched.values()).backward(retain_graph=True)
    assert x.grad is not None and x.grad.abs().sum() > 0
    (x_grad, *_), x.grad = (x.grad.clone(),), None
    emb.sum().backward()
    assert x.grad.abs().sum() > 0 and not torch.equal(x.grad, x_grad)
    grads_only = per_class_gradients(net, params, x.detach(), y, mode)
    assert all(torch.allclose(grads_only[n], g, atol=1e-5) for n, g in batched.items())


def test_gradients_reach_latents_not_the_generator(tmp_path, tiny, generator_file):
    cfg = _cfg(tmp_path, "distill.init=normal")
    d = Distiller(cfg, generator=generator_file, data=tiny)
    before = {k: v.clone() for k, v in d.ckpt.generator.state_dict().items()}
    z0 = d.syn.latents.detach().clone()
    d.run()
    assert not torch.equal(d.syn.latents.detach(), z0)
    for k, v in d.ckpt.generator.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not p.requires_grad for p in d.ckpt.generator.parameters())


@pytest.mark.parametrize("objective,optimizer,lr", [("dm", "sgd", 5), ("krr", "adam", 0.05)])
def test_set_objectives_decrease_on_a_fixed_network(tmp_path, tiny, objective, optimizer, lr):
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        f"distill.objective={objective}",
        "distill.init=noise",
        "distill.max_iterations=30",
        "distill.eval_every=0",
        f"distill.optimizer={optimizer}",
        f"distill.lr={lr}",
    )
    d = Distiller(cfg, data=tiny)
    net = d.networks.fresh(0)
    d.networks.fresh = lambda it: net  # a toy problem: one fixed network
    ds = d.run()
    losses = [h["match_loss"] for h in ds.history]
    assert losses[-1] < 0.5 * losses[0]


def test_discrimination_loss_rewards_prototypes_of_the_right_class():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 16, generator=gen)
    real = centres[:, None] + 0.1 * torch.randn(4, 8, 16, generator=gen)  # (K, B, D)
    right = discrimination_loss(real, real.mean(1))
    wrong = discrimination_loss(real, real.mean(1).roll(1, dims=0))
    assert right < 0.1 < 2.0 < wrong
    syn = torch.zeros(4, 16, requires_grad=True)
    discrimination_loss(real, syn + 0.01 * centres).backward()
    assert syn.grad.abs().sum() > 0


def test_krr_loss_is_small_when_the_set_predicts_the_real_labels():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=gen)
    real = centres[:, None] + 0.1 * torch.randn(4, 8, 32, generator=gen)  # (K, B, D)
    right = krr_loss(real, real[:, :2])  # two real embeddings per class as the "set"
    wrong = krr_loss(real, real[:, :2].roll(1, dims=0))  # every class labelled as another
    assert right < 0.05 and wrong > 1.0
    syn = (real[:, :2] + 0.5 * torch.randn(4, 2, 32, generator=gen)).requires_grad_(True)
    krr_loss(real, syn).backward()
    assert syn.grad.abs().sum() > 0 and syn.grad.dtype == torch.float32


def _three_pixel_iterations(tmp_path, tiny, *overrides):
    """The images a 3-iteration pixel-space distillation of the toy data ends with."""
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        "distill.max_iterations=3",
        "distill.eval_every=0",
        *overrides,
    )
    return Distiller(cfg, data=tiny).run().images_float


@pytest.mark.parametrize("objective", ["gm", "dm"])
def test_discrimination_term_changes_the_set(tmp_path, tiny, objective):
    def final(weight):
        return _three_pixel_iterations(
            tmp_path,
            tiny,
            "distill.init=noise",  # from real images the toy classes are already separated
            f"distill.objective={objective}",
            f"distill.discrimination={weight}",
        )

    assert not torch.equal(final(0.0), final(10.0))


def _from_real(tmp_path, tiny, objective, dm_weight, *more):
    """``_three_pixel_iterations`` from a real subset with this objective and DM weight."""
    return _three_pixel_iterations(
        tmp_path,
        tiny,
        "distill.init=real",
        f"distill.objective={objective}",
        f"distill.dm_weight={dm_weight}",
        *more,
    )


def test_dm_weight_adds_distribution_matching_to_gradient_matching(tmp_path, tiny):
    def final(weight, objective="gm"):
        return _from_real(tmp_path, tiny, objective, weight)

    assert not torch.equal(final(0.0), final(1.0))
    with pytest.raises(ConfigError, match="dm_weight"):
        final(1.0, "dm")


def test_layerwise_dm_weighs_each_block_as_the_embedding():
    gen = torch.Generator().manual_seed(0)
    real = [torch.randn(3 * 4, d, generator=gen) for d in (32, 8)]  # 3 classes, 4 images each
    syn = [torch.randn(3 * 2, d, generator=gen) for d in (32, 8)]
    assert layerwise_dm(real, real, 3, 8).abs() < 1e-6
    # one block of the embedding's size: plain DM's sum over classes of squared mean distances
    plain = (real[1].view(3, 4, 8).mean(1) - syn[1].view(3, 2, 8).mean(1)).pow(2).sum()
    assert torch.allclose(layerwise_dm(real[1:], syn[1:], 3, 8), plain)
    # a block 4x wider counts its mean squared distance at the embedding's size
    wide = (real[0].view(3, 4, 32).mean(1) - syn[0].view(3, 2, 32).mean(1)).pow(2).sum() / 4
    assert torch.allclose(layerwise_dm(real, syn, 3, 8), wide + plain)


def test_block_outputs_end_with_the_embedding():
    net = ConvNet(3, width=8, depth=3)
    x = torch.randn(2, 1, 28, 28)
    outs = net.block_outputs(x)
    assert [o.shape[1] for o in outs] == [8 * 16 * 16, 8 * 8 * 8, net.feature_dim]
    assert torch.allclose(outs[-1], net.embed(x))


@pytest.mark.parametrize("objective,weight", [("dm", 0.0), ("gm", 1.0)])
def test_dm_layers_changes_the_set(tmp_path, tiny, objective, weight):
    def final(layers):
        return _from_real(tmp_path, tiny, objective, weight, f"distill.dm_layers={layers}")

    assert not torch.equal(final(False), final(True))
    with pytest.raises(ConfigError, match="dm_layers"):
        _three_pixel_iterations(tmp_path, tiny, "distill.objective=gm", "distill.dm_layers=true")


def test_warm_up_trains_matching_networks_reproducibly(tmp_path, tiny):
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        "distill.init=real",
        "distill.net_warmup=4",
        "distill.batch_train=12",
        "distill.net_width=8",
    )
    d = Distiller(cfg, data=tiny)
    steps = {}
    for it in range(1, 9):
        nets = [d.networks.fresh(it) for _ in range(2)]
        counts = [d.networks.warm_up(net, it) for net in nets]
        assert counts[0] == counts[1] and 0 <= counts[0] <= 4
        fresh, warm = d.networks.fresh(it).state_dict(), nets[0].state_dict()
        assert all(torch.equal(warm[n], p) for n, p in nets[1].state_dict().items())
        assert all(torch.equal(fresh[n], p) for n, p in warm.items()) == (counts[0] == 0)
        steps[it] = counts[0]
    assert len(set(steps.values())) > 1  # the number of steps is drawn per iteration


@pytest.mark.parametrize("extra", ["distill.ce_weight=1", "distill.net_warmup=3"])
def test_idm_warmup_and_class_term_change_the_set(tmp_path, tiny, extra):
    def final(*more):
        return _three_pixel_iterations(
            tmp_path,
            tiny,
            "distill.init=real",
            "distill.objective=dm",
            "distill.batch_train=12",
            *more,
        )

    assert not torch.equal(final(), final(extra))


def test_network_pool_trains_its_networks_and_replaces_old_ones(tmp_path, tiny):
    def distiller(*more):
        cfg = _cfg(
            tmp_path,
            "distill.space=pixel",
            "distill.init=real",
            "distill.objective=dm",
            "distill.max_iterations=5",
            "distill.eval_every=0",
            *more,
        )
        return Distiller(cfg, data=tiny)

    d = distiller("distill.pool_size=1", "distill.pool_steps=2")
    made = []
    fresh = d.networks.fresh
    d.networks.fresh = lambda it: made.append(it) or fresh(it)
    pooled = d.run().images_float
    assert made == [1, 3, 5]  # a network serves two iterations, then a fresh one comes in
    slot = d.networks.pool[0]
    assert slot["age"] == 1 and all(p.requires_grad for p in slot["net"].parameters())
    trained, untrained = slot["net"].state_dict(), fresh(5).state_dict()
    assert not all(torch.equal(trained[n], p) for n, p in untrained.items())
    assert not torch.equal(pooled, distiller().run().images_float)
    with pytest.raises(ConfigError, match="pool_size"):
        distiller("distill.objective=gm", "distill.outer_loop=2", "distill.pool_size=2")


def test_matching_step_computes_no_gradients_for_the_network(tmp_path, tiny):
    # the set's extra terms embed the synthetic images with the network's weights as constants
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        "distill.init=real",
        "distill.discrimination=1",
        "distill.dm_weight=1",
        "distill.ce_weight=1",
        "distill.eval_every=0",
    )
    d = Distiller(cfg, data=tiny)
    net = d.networks.fresh(1)
    d.step.update(net, step_generator(cfg.seed, 1))
    assert all(p.grad is None and p.requires_grad for p in net.parameters())
    assert d.syn.pixels.grad.abs().sum() > 0


def test_pixel_space_runs_through_the_same_path(tmp_path, tiny):
    cfg = _cfg(tmp_path, "distill.space=pixel", "distill.init=real")
    d = Distiller(cfg, data=tiny)
    start = d.syn().detach().clone()
    ds = d.run()
    assert ds.space == "pixel" and ds.latents is None
    assert not torch.equal(ds.images_float, start)
    assert 0.0 <= ds.history[-1]["accuracy"] <= 1.0
    assert ds.stop_reason == "max_iterations"


def test_latent_real_init_inverts_a_real_subset(tmp_path, tiny, generator_file):
    cfg = _cfg(tmp_path, "distill.init=real", "distill.space=hybrid", "distill.invert_steps=30")
    d = Distiller(cfg, generator=generator_file, data=tiny)
    gen = step_generator(cfg.seed, -10)  # the init's stream: the same subset
    real = torch.cat([d.train_set.sample_class(c, 2, gen) for c in range(3)])
    assert torch.allclose(d.syn(), d.info.normalize(real), atol=1e-5)  # residual closes the gap
    # the inversion itself: closer to the real images than the prior draws it started from
    g, labels = d.ckpt.generator, d.syn.labels
    target = to_gan_range(real)
    err = lambda z: (g(z, labels) - target).pow(2).mean()  # noqa: E731
    z = invert(g, target, labels, 60, 4, torch.Generator().manual_seed(0))
    start = invert(g, target, labels, 0, 4, torch.Generator().manual_seed(0))
    assert err(z) < err(start)  # (the smoke generator is barely trained: a small gain)


def test_pixel_best_of_k_starts_at_the_latent_start_decoded(tmp_path, tiny, generator_file):
    """Pixel space's best_of_k start is the images of latent space's best_of_k start (the control
    that tells what a start adds from what optimising latents adds); it stores pixels only and
    needs the generator."""
    latent_cfg = _cfg(tmp_path, "distill.init=best_of_k", "distill.space=latent")
    latent = Distiller(latent_cfg, generator=generator_file, data=tiny)
    pixel_cfg = _cfg(tmp_path, "distill.space=pixel", "distill.init=best_of_k")
    pixel = Distiller(pixel_cfg, generator=generator_file, data=tiny)
    assert torch.allclose(pixel.syn(), latent.syn(), atol=1e-5)
    noise = Distiller(_cfg(tmp_path, "distill.space=pixel"), generator=generator_file, data=tiny)
    assert noise.ckpt is None and not torch.allclose(noise.syn(), latent.syn(), atol=0.1)
    ds = pixel.run()
    assert ds.space == "pixel" and ds.latents is None and ds.residuals is None
    assert ds.generator_sha256 == pixel.ckpt.sha256  # what the start was drawn from
    with pytest.raises(ConfigError, match="best_of_k.*--generator"):
        Distiller(pixel_cfg, data=tiny)


@pytest.mark.parametrize(
    "method,space", [("herding", "pixel"), ("kmeans", "pixel"), ("herding", "hybrid")]
)
def test_coreset_init_starts_at_the_coreset(tmp_path, tiny, generator_file, method, space):
    extra = ["distill.invert_steps=5"] if space == "hybrid" else []
    cfg = _cfg(tmp_path, f"distill.space={space}", f"distill.init={method}", *extra)
    d = Distiller(cfg, generator=generator_file if space == "hybrid" else None, data=tiny)
    coreset = build_baseline(cfg, method, data=tiny)  # the same selection, as a baseline set
    assert torch.allclose(d.syn(), coreset.images_float, atol=1e-5)
    random_start = Distiller(_cfg(tmp_path, "distill.space=pixel", "distill.init=real"), data=tiny)
    assert not torch.allclose(random_start.syn(), coreset.images_float)


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["distill.feature_level=1", "distill.space=hybrid", "distill.latent_penalty=0.1"],
        ["distill.dsa=true", "distill.objective=dm"],
    ],
)
def test_artifact_round_trip_and_hash_check(tmp_path, tiny, generator_file, extra):
    out = tmp_path / "set.pt"
    cfg = _cfg(tmp_path, "distill.init=truncated", *extra)
    ds = Distiller(cfg, generator=generator_file, out=out, data=tiny).run()
    loaded = DistilledSet.load(out)
    assert torch.equal(loaded.images_float, ds.images_float)
    assert torch.equal(loaded.latents, ds.latents)
    assert loaded.teacher_logits.shape == (6, 3)
    assert torch.equal(loaded.teacher_logits, ds.teacher_logits)
    assert loaded.labels.tolist() == [0, 0, 1, 1, 2, 2] and loaded.ipc == 2
    assert loaded.generator_sha256 == load_generator_checkpoint(generator_file).sha256
    assert loaded.config == resolve(cfg, "cpu")  # saved with every derived setting concrete
    assert torch.allclose(loaded.decode(), ds.images_float, atol=1e-5)
    assert loaded.images().min() >= 0 and loaded.images().max() <= 1
    x, y = loaded.to_dataset()[3]
    assert x.shape == (1, 28, 28) and int(y) == 1
    # another generator (same architecture, different weights) is refused
    other = tmp_path / "other.pt"
    other.write_bytes(Path(generator_file).read_bytes())
    payload = torch.load(other, weights_only=True)
    payload["ema_state_dict"] = {
        k: v + 1 if v.is_floating_point() else v for k, v in payload["ema_state_dict"].items()
    }
    torch.save(payload, other)
    with pytest.raises(ArtifactError, match="not the one this set was distilled with"):
        loaded.decode(other)


def test_same_seed_same_set(tmp_path, tiny, generator_file):
    cfg = _cfg(tmp_path, "distill.init=normal", "distill.dsa=true")
    a = Distiller(cfg, generator=generator_file, data=tiny).run()
    b = Distiller(cfg, generator=generator_file, data=tiny).run()
    assert torch.equal(a.images_float, b.images_float)
    c = Distiller(dataclasses.replace(cfg, seed=1), generator=generator_file, data=tiny).run()
    assert not torch.equal(a.images_float, c.images_float)


def test_patience_stops_early(tmp_path, tiny):
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        "distill.max_iterations=50",
        "distill.patience=2",
        "distill.tolerance=0.9",
        "distill.eval_every=0",
    )
    ds = Distiller(cfg, data=tiny).run()
    assert ds.stop_reason == "converged"
    assert len(ds.history) < 50


@pytest.mark.parametrize("stop", ["distill.patience=2", "distill.max_minutes=0.0001"])
def test_progress_bar_closes_when_the_run_stops_early(tmp_path, tiny, stop, capsys):
    """A budget or convergence stop ends the run before the epoch of ``max_iterations``; the
    bar must still close there, not at interpreter exit after everything printed later, and
    say why it stopped where it did instead of filling up to 100%."""
    common = ["distill.space=pixel", "distill.max_iterations=50", "distill.eval_every=0"]
    cfg = _cfg(tmp_path, *common, "distill.progress=true", "distill.tolerance=0.9", stop)
    d = Distiller(cfg, data=tiny)
    ds = d.run()
    assert len(ds.history) < 50 and ds.stop_reason in ("converged", "max_minutes")
    assert d.progress is not None and d.progress.pbar is None  # ignite's bar, closed
    lines = capsys.readouterr().err.replace("\r", "\n").splitlines()
    last = [line for line in lines if line.startswith("distill")][-1]
    why = "time budget spent" if "max_minutes" in stop else "converged"
    assert last.startswith(f"distill, stopped ({why}): [{len(ds.history)}/50]")
    assert "100%" not in last


def test_the_pace_note_says_how_long_a_run_without_a_budget_takes():
    assert monitor.pace_note(seconds=30.0, iteration=3, max_iterations=50) is None  # 8m20s
    note = monitor.pace_note(seconds=648.0, iteration=3, max_iterations=200)  # 3m36s each
    assert note.startswith("gandistill: note: at 3m36s per iteration the 200 iterations")
    assert "about 720m00s (12.0 h)" in note and "distill.max_minutes=N" in note


@pytest.mark.parametrize("budget", [0.0, 60.0])
def test_a_run_without_a_budget_notes_its_pace_once(tmp_path, tiny, budget, capsys, monkeypatch):
    monkeypatch.setattr(monitor, "PACE_NOTE_MINUTES", 0.0)  # any pace is long
    monkeypatch.setattr(monitor, "PACE_AFTER", (2, 1e9))
    common = ["distill.space=pixel", "distill.max_iterations=4", "distill.eval_every=0"]
    Distiller(_cfg(tmp_path, *common, f"distill.max_minutes={budget}"), data=tiny).run()
    notes = [x for x in capsys.readouterr().err.splitlines() if "per iteration the 4" in x]
    assert len(notes) == (0 if budget else 1)  # with a budget the bar shows what is spent


def test_bad_input(tmp_path, tiny, generator_file):
    with pytest.raises(DataError, match="ipc 10 exceeds the 6 training images of class 0"):
        Distiller(
            _cfg(tmp_path, "distill.space=pixel", "distill.init=real", "distill.ipc=10"), data=tiny
        )
    mnist_like = make_tiny_data(num_classes=4)
    with pytest.raises(DataError, match="3 classes"):
        Distiller(_cfg(tmp_path), generator=generator_file, data=mnist_like)
    with pytest.raises(ArtifactError, match="not found"):
        Distiller(_cfg(tmp_path), generator=tmp_path / "none.pt", data=tiny)


def test_cosine_schedule_anneals_the_set_learning_rate(tmp_path, tiny):
    cfg = _cfg(
        tmp_path,
        "distill.space=pixel",
        "distill.max_iterations=4",
        "distill.eval_every=0",
        "distill.lr=0.4",
        "distill.lr_schedule=cosine",
    )
    d = Distiller(cfg, data=tiny)
    seen = []
    d.engine.add_event_handler(
        Events.ITERATION_COMPLETED, lambda _: seen.append(d.opt.param_groups[0]["lr"])
    )
    d.run()
    assert seen[0] == pytest.approx(0.4) and seen == sorted(seen, reverse=True)
    assert seen[-1] < 0.2


@pytest.mark.parametrize("extra", ["distill.objective=krr", "distill.discrimination=1"])
def test_terms_across_all_classes_refuse_several_processes(tmp_path, tiny, monkeypatch, extra):
    monkeypatch.setattr(distillation_step, "world_size", lambda: 2)
    cfg = _cfg(tmp_path, "distill.space=pixel", extra)
    with pytest.raises(ConfigError, match="runs in one process"):
        Distiller(cfg, data=tiny)


@pytest.mark.parametrize("space", ["latent", "hybrid"])
def test_latent_space_stores_latents_alone_and_hybrid_counts_its_residuals(
    tmp_path, tiny, generator_file, space
):
    from gandistill.evaluation.sections import needed_bytes

    out = tmp_path / "set.pt"
    cfg = _cfg(tmp_path, f"distill.space={space}", "distill.init=truncated")
    d = Distiller(cfg, generator=generator_file, out=out, data=tiny)
    assert (d.syn.residuals is None) == (space == "latent")
    assert [n for n, p in d.syn.named_parameters() if p.requires_grad] == (
        ["latents"] if space == "latent" else ["latents", "residuals"]
    )
    ds = d.run()
    loaded = DistilledSet.load(out)
    assert loaded.space == space and (loaded.residuals is None) == (space == "latent")
    # a pure latent set decodes to exactly its images through the generator
    if space == "latent":
        assert torch.allclose(loaded.decode(), ds.images_float, atol=1e-5)
    _, as_codes, _ = needed_bytes(loaded)
    n, extras = len(loaded.labels), 8 * len(loaded.labels) + 4 * loaded.teacher_logits.numel()
    residual_bytes = 0 if space == "latent" else n * 4 * loaded.images_uint8[0].numel()
    assert as_codes == 4 * loaded.latents.numel() + residual_bytes + extras


def test_a_set_saved_before_hybrid_had_its_name_loads_as_hybrid(tmp_path, tiny, generator_file):
    out = tmp_path / "set.pt"
    cfg = _cfg(tmp_path, "distill.space=hybrid", "distill.init=truncated")
    Distiller(cfg, generator=generator_file, out=out, data=tiny).run()
    payload = torch.load(out, weights_only=True)
    payload["space"] = "latent"  # as sets with residuals were saved before
    payload["config"]["distill"]["space"] = "latent"
    payload["config"]["distill"]["residual"] = True
    torch.save(payload, out)
    loaded = DistilledSet.load(out)
    assert loaded.space == "hybrid" and loaded.config.distill.space == "hybrid"


def test_net_archs_draws_matching_networks_from_several_architectures(tmp_path, tiny):
    from gandistill.distillation.networks import MatchingNetworks

    archs = "instancenorm:3:8,batchnorm:2:4,none:1:6"
    cfg = resolve(_cfg(tmp_path, "distill.space=pixel", f"distill.net_archs={archs}"), "cpu")
    nets = MatchingNetworks(cfg, tiny.info, tiny.train, torch.device("cpu"))
    drawn = {
        (n.kwargs["norm"], n.kwargs["depth"], n.kwargs["width"]) for n in map(nets.fresh, range(40))
    }
    assert drawn == {("instancenorm", 3, 8), ("batchnorm", 2, 4), ("none", 1, 6)}
    again = MatchingNetworks(cfg, tiny.info, tiny.train, torch.device("cpu")).fresh(5)
    assert again.kwargs == nets.fresh(5).kwargs  # each iteration's draw is its own stream's
    ds = Distiller(cfg, data=tiny).run()  # the objectives run on every variant
    assert len(ds.history) == 2 and all(h["match_loss"] >= 0 for h in ds.history)
    # without net_archs: net_norm/net_depth/net_width, the draws as before
    plain = MatchingNetworks(resolve(_cfg(tmp_path), "cpu"), tiny.info, tiny.train, "cpu")
    assert plain.fresh(0).kwargs["depth"] == 3 and plain.archs == [("instancenorm", 3, 8)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("instancenorm:3", "is not NORM:DEPTH:WIDTH"),
        ("groupnorm:3:8", "'groupnorm:3:8' is not"),
        ("none:0:8", "DEPTH 1.."),
    ],
)
def test_bad_net_archs_are_one_line_errors(tmp_path, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        resolve(_cfg(tmp_path, f"distill.net_archs={value}"), "cpu")
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="keeps networks of one architecture"):
        resolve(
            _cfg(tmp_path, "distill.net_archs=none:2:8", "distill.pool_size=2",
                 "distill.objective=dm"),
            "cpu",
        )  # fmt: skip
