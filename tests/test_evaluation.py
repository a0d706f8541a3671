"""``gandistill evaluate``: the report's content, files, caching and bad input."""

import json
import math
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from cli_batch import run_cli_many
from conftest import SMOKE, make_tiny_data, tiny_pixel_set

from gandistill.config import load_config
from gandistill.errors import ConfigError
from gandistill.evaluation import report as report_mod
from gandistill.evaluation.options import PROFILES
from gandistill.evaluation.render import cross_architecture_lines, headline
from gandistill.evaluation.sections import at_chance, cross_architecture_section
from gandistill.files import DistilledSet, atomic_save

FAST = ["eval.epochs=3", "eval.n_models=2", "classifier.epochs=1", "classifier.width=8"]


def _cfg(tmp_path, data_file, *extra):
    return load_config(
        SMOKE,
        [f"cache_dir={tmp_path}", "data.name=tensors", f"data.root={data_file}", *FAST, *extra],
    )


@pytest.fixture
def setup(tmp_path):
    """A tiny tensors dataset on disk and a 2-per-class pixel-space set made from it."""
    return tiny_pixel_set(tmp_path, FAST)


def test_report_content_and_files(tmp_path, setup, monkeypatch):
    cfg, path, data = setup
    out = tmp_path / "report"
    rep = report_mod.evaluate_distilled(
        path, cfg, out=out, profile="quick", data=data, progress=False
    )
    assert tuple(rep) == report_mod.REPORT_KEYS
    assert rep["source"]["ipc"] == 2 and rep["source"]["space"] == "pixel"
    acc = rep["accuracy"]["convnet"]
    for name in ("distilled", "random_real", "full_data"):
        assert len(acc[name]["accuracies"]) == 1  # quick: one network
        assert 0.0 <= acc[name]["mean"] <= 1.0
    assert rep["protocol"]["epochs"] == 3 and rep["protocol"]["augment"] == "none"
    fid = rep["fidelity"]
    # the independent network, not the classifier that selects sets and gives soft labels
    assert fid["extractor"].startswith("gandistill-independent-")
    assert set(fid) == {"extractor", "distilled", "random_real"}  # the floor has the set's size
    for name in ("distilled", "random_real"):
        scores = fid[name]
        assert scores["fid"] >= -1e-3 and 1.0 <= scores["is_mean"] <= 3.0 + 1e-6
        assert scores["fid_ci"][0] <= scores["fid_ci"][1] and scores["kid_units"] == "x1e3"
        assert scores["kid_ci"][0] <= scores["kid_ci"][1] and scores["kid_subset_size"] == 6
    assert len(data.train) == 30  # 36 less the validation split's ceil(12 * 0.1) per class
    assert rep["compression"]["image_ratio"] == pytest.approx(30 / 6)
    assert rep["training_time"]["reduction"] > 0
    assert -1.0 <= rep["gradient_similarity"]["cos_mean"] <= 1.0
    # the distilled images are training images: SSIM 1, distance to the closest record 0
    assert rep["structure"]["nearest_real_ssim_mean"] == pytest.approx(1.0, abs=1e-4)
    assert rep["privacy"]["dcr_syn_min"] == 0.0 and rep["privacy"]["near_copies"] == 6
    assert rep["distribution"]["class_js"] == pytest.approx(0.0, abs=1e-6)
    for name in ("report.json", "report.md", "grid.png", "accuracy.png"):
        assert (out / name).is_file(), name
    assert json.loads((out / "report.json").read_text())["accuracy"] == rep["accuracy"]
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert "random real subset" in (out / "report.md").read_text()
    splits = rep["splits"]
    assert splits["choices_read"] == "validation" and splits["scores_read"] == "test"
    assert (splits["train"]["images"], splits["val"]["images"]) == (30, 6)
    assert splits["test"]["images"] == len(data.test) and "carved" in splits["val"]["origin"]
    assert (
        "quick checks and choices on the validation split (6 images"
        in (out / "report.md").read_text()
    )
    assert not list(out.glob(".*.tmp"))

    # the full-data reference trained until validation stalled, well before the cap
    full = acc["full_data"]
    cap = report_mod.PROFILES["quick"].full_epochs
    assert full["converged"] and all(
        b <= e < cap for b, e in zip(full["best_epochs"], full["epochs"], strict=True)
    )
    assert "full training data (converged, best validation epoch" in (out / "report.md").read_text()

    # the full-data reference is cached: a second report trains only the two small sets
    calls = []
    real_train_network = report_mod.train_network
    monkeypatch.setattr(
        report_mod,
        "train_network",
        lambda images, *a, **k: calls.append(len(images)) or real_train_network(images, *a, **k),
    )
    monkeypatch.setattr(report_mod, "train_to_convergence", None)  # calling it would fail
    again = report_mod.evaluate_distilled(path, cfg, profile="quick", data=data, progress=False)
    assert calls == [6, 6]
    assert again["accuracy"]["convnet"]["full_data"] == acc["full_data"]
    assert again["accuracy"]["convnet"]["distilled"]["accuracies"] == acc["distilled"]["accuracies"]


def test_full_profile_follows_the_config(tmp_path, setup):
    cfg, path, data = setup
    rep = report_mod.evaluate_distilled(path, cfg, profile="full", data=data, progress=False)
    assert rep["protocol"]["augment"] == cfg.eval.augment == "dc"
    assert len(rep["accuracy"]["convnet"]["distilled"]["accuracies"]) == 2


def test_cli_evaluate_end_to_end_and_bad_input(tmp_path, setup):
    cfg, path, _ = setup
    out = tmp_path / "cli_report"
    evaluate = ["evaluate", "--distilled", path, "--out"]
    refusals = [  # (arguments, what the one-line error names), after a first good run
        ([*evaluate, out], "already exists"),
        (["evaluate", "--distilled", tmp_path / "nope.pt", "--out", tmp_path / "r2"], "nope"),
        # a data file, not a distilled set
        (["evaluate", "--distilled", tmp_path / "tiny.pt", "--out", tmp_path / "r3"], "tiny.pt"),
        ([*evaluate, tmp_path / "r4", "--set", "data.name=mnist5k"], "3 classes"),  # 10 there
        (
            [*evaluate, tmp_path / "r5", "--feature-extractor", "inception-v3-compat"]
            + ["--inception-weights", tmp_path / "missing.pth"],
            "missing.pth",
        ),
        ([*evaluate, tmp_path / "r6", "--kid-subset-size", "100"], "KID subset size 100"),
        ([*evaluate, tmp_path / "r7", "--archs", "vgg99"], "vgg99"),
    ]
    here = Path.cwd()
    good, *refused = run_cli_many(
        [([*evaluate, out, "--no-progress"], here)] + [(args, here) for args, _ in refusals]
    )
    assert good.returncode == 0, good.stderr
    assert "random real subset" in good.stdout and (out / "report.json").is_file()
    for proc, (_, fragment) in zip(refused, refusals, strict=True):
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and fragment in proc.stderr, proc.stderr
    assert not (tmp_path / "r4").exists() and not (tmp_path / "r5" / "report.json").exists()
    assert Path(path).is_file()


def test_distillation_loss():
    from gandistill.fit import distillation_loss

    gen = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 3, generator=gen), torch.randn(8, 3, generator=gen)
    labels = torch.randint(3, (8,), generator=gen)
    ce = torch.nn.functional.cross_entropy(student, labels)
    assert torch.allclose(distillation_loss(4.0, 0.0)(student, (labels, teacher)), ce)
    assert distillation_loss(4.0, 1.0)(student, (labels, student)).abs() < 1e-6  # KL(p‖p) = 0
    assert distillation_loss(4.0, 1.0)(student, (labels, teacher)) > 0.01


def test_soft_labels_and_architectures(tmp_path, setup):
    cfg, path, data = setup
    rep = report_mod.evaluate_distilled(
        path,
        cfg,
        profile="quick",
        data=data,
        progress=False,
        soft_labels=True,
        archs=["mlp", "lenet"],
    )
    assert list(rep["accuracy"]) == ["mlp", "lenet"] == rep["protocol"]["archs"]
    assert "full_data" in rep["accuracy"]["mlp"] and "full_data" not in rep["accuracy"]["lenet"]
    assert "random real subset (lenet)" in headline(rep)
    rows = rep["accuracy"]["mlp"]
    assert 0.0 <= rows["distilled_soft"]["mean"] <= 1.0
    assert rows["soft_label_gain"] == pytest.approx(
        rows["distilled_soft"]["mean"] - rows["distilled"]["mean"]
    )
    assert "distilled, soft labels" in headline(rep)
    with pytest.raises(ConfigError, match="unknown architecture"):
        report_mod.evaluate_distilled(path, cfg, data=data, archs=["convnet", "vgg99"])


def test_cross_architecture_block_names_each_architecture_and_its_protocol(tmp_path, setup):
    cfg, path, data = setup
    archs = ["convnet", "mlp", "lenet"]
    rep = report_mod.evaluate_distilled(
        path, cfg, profile="quick", data=data, progress=False, archs=archs
    )
    cross = rep["cross_architecture"]
    assert cross["matched"] == "convnet" and cross["unseen"] == ["mlp", "lenet"]
    assert list(cross["protocols"]) == archs
    for p in cross["protocols"].values():
        assert p["n_models"] == 1 and p["augment"] == "none" and p["epochs"] >= 1
    mean = cross["unseen_mean"]["distilled"]
    accs = [rep["accuracy"][a]["distilled"]["mean"] for a in ("mlp", "lenet")]
    assert mean["mean"] == pytest.approx(sum(accs) / 2)
    bse = [rep["accuracy"][a]["distilled"]["binomial_se"] for a in ("mlp", "lenet")]
    assert mean["binomial_se"] == pytest.approx(sum(bse) / 2) and mean["binomial_se"] > 0
    text = headline(rep)
    for arch, role in (("convnet", "matched"), ("mlp", "unseen"), ("lenet", "unseen")):
        assert f"| {arch} ({role}) | 1 × " in text
    assert "**mean of 2 unseen**" in text and "no augmentation" in text
    assert mean["network_se"] is None and f"| {100 * mean['mean']:.1f} (test s.e." in text  # n=1
    # one architecture: no block
    single = report_mod.evaluate_distilled(path, cfg, profile="quick", data=data, progress=False)
    assert single["cross_architecture"] == {} and "Cross-architecture" not in headline(single)


def test_the_cpu_profile_trims_only_the_costliest_networks(tmp_path, setup):
    """``profile="cpu"``: the configured protocol (the DC protocol) for ConvNet and the other
    cheap networks, the quick cuts (no augmentation, one network) for AlexNet and ResNet-18."""
    cfg, path, data = setup
    rep = report_mod.evaluate_distilled(
        path, cfg, profile="cpu", data=data, progress=False, archs=["convnet", "alexnet"]
    )
    protocols = rep["cross_architecture"]["protocols"]
    assert protocols["convnet"]["augment"] == cfg.eval.augment == "dc"
    assert protocols["convnet"]["n_models"] == cfg.eval.n_models == 2
    assert protocols["alexnet"]["augment"] == "none" and protocols["alexnet"]["n_models"] == 1
    assert len(rep["accuracy"]["alexnet"]["distilled"]["accuracies"]) == 1
    assert len(rep["accuracy"]["convnet"]["distilled"]["accuracies"]) == 2
    assert rep["protocol"]["augment"] == "dc" and rep["profile"] == "cpu"  # the matched network's
    text = headline(rep)
    assert "| convnet (matched) | 2 × " in text and "| alexnet (unseen) | 1 × " in text
    # a heavy network first: the manifest is its (trimmed) protocol
    ec = report_mod.apply_profile(cfg.eval, PROFILES["cpu"], "resnet18")
    assert (ec.arch, ec.epochs, ec.augment, ec.n_models) == ("resnet18", 3, "none", 1)
    big = replace(cfg.eval, epochs=1000)
    assert report_mod.apply_profile(big, PROFILES["cpu"], "alexnet").epochs == 300
    assert report_mod.apply_profile(big, PROFILES["cpu"], "lenet") == replace(big, arch="lenet")
    assert report_mod.apply_profile(big, PROFILES["full"], "alexnet").epochs == 1000


def test_generator_report(tmp_path, setup):
    from gandistill.evaluation.generator import GENERATOR_REPORT_KEYS, evaluate_generator
    from gandistill.gan.trainer import train

    cfg, _, data = setup
    gen_cfg = load_config(
        SMOKE,
        [
            f"run_dir={tmp_path / 'run'}",
            f"cache_dir={tmp_path}",
            "train.eval_samples_per_class=0",
            *FAST,
        ],
    )
    generator = train(gen_cfg, data=data).generator_path
    out = tmp_path / "gen_report"
    rep = evaluate_generator(generator, cfg, out=out, data=data, progress=False)
    assert tuple(rep) == GENERATOR_REPORT_KEYS
    assert 0.0 <= rep["class_consistency"] <= 1.0
    assert 0.0 <= rep["real_vs_generated"]["accuracy"] <= 1.0
    assert rep["fidelity"]["generated"]["fid"] > rep["fidelity"]["real_train"]["fid"]
    assert (out / "report.json").is_file() and (out / "grid.png").is_file()
    assert "Class consistency" in (out / "report.md").read_text()
    div = rep["diversity"]
    assert len(div["per_class"]) == data.info.num_classes and div["min"] == min(div["per_class"])
    assert (
        0 < div["min"] <= div["mean"] and "Intra-class diversity" in (out / "report.md").read_text()
    )
    cas = rep["cas"]
    assert list(cas["rows"]) == ["1", "10", "full"] and cas["protocol"]["epochs"] == 3
    for row in cas["rows"].values():
        assert len(row["generated"]["accuracies"]) == 1 and 0 <= row["real"]["mean"] <= 1
    full = cas["rows"]["full"]
    counts = data.train.class_counts()
    assert full["samples_per_class"] == round(sum(counts) / len(counts))
    # the real side of the full row is the report's converged full-data reference
    assert full["generated"]["epochs"][0] <= cas["protocol"]["full_max_epochs"]
    assert "converged" in full["real"] and "all (" in (out / "report.md").read_text()
    text = (out / "report.md").read_text()
    assert (out / "cas.png").is_file() and "CAS (Ravuri & Vinyals 2019)" in text
    (proc,) = run_cli_many(
        [(["evaluate", "--distilled", "a.pt", "--generator", generator, "--out", out], tmp_path)]
    )
    assert proc.returncode == 2 and "one of --distilled" in proc.stderr


def test_compression_counts_everything_a_set_needs(tmp_path, setup):
    from gandistill.evaluation.render import _compression_line
    from gandistill.evaluation.sections import compression_section

    cfg, path, data = setup
    train, info = data.train, data.info
    ds = DistilledSet.load(path)
    n = len(ds.labels)
    ds.space, ds.latents = "latent", torch.zeros(n, 16)  # float32 codes
    ds.residuals = torch.zeros(n, 1, 28, 28)  # a float32 residual per image: 4× the uint8 image
    ds.teacher_logits = torch.zeros(n, info.num_classes)
    weights = {"w": torch.zeros(1000)}  # 4000 bytes of generator weights
    atomic_save({"ema_state_dict": weights, "state_dict": weights}, tmp_path / "g.pt")
    ds.generator_path = str(tmp_path / "g.pt")

    comp = compression_section(train, ds)
    labels, soft = 8 * n, 4 * n * info.num_classes
    assert comp["image_bytes"] == n * 784 + labels + soft
    assert comp["code_bytes"] == n * 16 * 4 + n * 784 * 4 + labels + soft  # residuals counted
    assert comp["code_bytes"] > comp["image_bytes"]  # this hybrid set is no smaller as codes
    assert comp["generator_bytes"] == 4000
    full = len(train) * 784 + 8 * len(train)
    assert comp["latent_gen_bytes_ratio"] == pytest.approx(full / (comp["code_bytes"] + 4000))
    line = _compression_line(comp)
    assert "as codes (latents, offsets, residuals, labels)" in line and "counted in" in line


def test_accuracy_carries_the_test_splits_binomial_error(tmp_path, setup):
    from gandistill.evaluation.render import _pct

    cfg, path, data = setup
    rep = report_mod.evaluate_distilled(path, cfg, profile="quick", data=data, progress=False)
    stats = rep["accuracy"]["convnet"]["distilled"]
    p, n_test = stats["mean"], len(data.test)
    assert stats["test_images"] == n_test
    assert stats["binomial_se"] == pytest.approx((p * (1 - p) / n_test) ** 0.5)
    # one network: no spread to show, but n and what the test split can resolve
    one = {"mean": 0.936, "std": 0.0, "accuracies": [0.936], "binomial_se": 0.0077}
    assert _pct(one) == "93.6% (n=1, test s.e. 0.8)"
    three = {"mean": 0.936, "std": 0.004, "accuracies": [0.93, 0.936, 0.94]}
    assert _pct(three) == "93.6 ± 0.4% (n=3)"  # a report written before the error was recorded
    assert rep["source"]["path"] == str(path)


def test_ior_of_the_random_subset_against_itself_is_zero(tmp_path, setup):
    """The set *is* the report's random real subset: same images, same networks, IOR 0."""
    cfg, path, data = setup
    ds = DistilledSet.load(path)
    rand01, labels = report_mod.random_real_subset(data.train, ds.ipc, cfg.seed)
    pixels = (rand01 * 255).round().to(torch.uint8)
    ds.images_uint8, ds.labels = pixels, labels
    ds.images_float = data.info.normalize(pixels.float() / 255.0)
    ds.teacher_logits = None
    rep = report_mod.evaluate_distilled(
        ds, cfg, profile="quick", data=data, progress=False, soft_labels=True
    )
    fair = rep["fairness"]["convnet"]
    assert fair["ior_hard"] == 0.0 and fair["ior_soft"] == 0.0
    rows = rep["accuracy"]["convnet"]
    assert fair["hlr"] == pytest.approx(rows["full_data"]["mean"] - rows["distilled"]["mean"])
    assert "arXiv:2505.13300" in rep["fairness"]["definitions"]
    manifest = rep["protocol"]
    assert manifest["label_types"] == ["hard", "soft"] and "KL" in manifest["soft_label_loss"]
    assert manifest["network_seeds"] == [cfg.seed + 1000 * i for i in range(manifest["n_models"])]
    assert manifest["test_images"] == len(data.test) and manifest["choices_split"] == "validation"
    text = headline(rep)
    assert "IOR +0.0" in text and "near-copies of training images" in text


def test_fairness_arithmetic():
    from gandistill.evaluation.sections import fairness_section

    def row(mean, std=0.0, n=1, se=0.0):
        return {"mean": mean, "std": std, "accuracies": [mean] * n, "binomial_se": se}

    acc = {
        "convnet": {
            "distilled": row(0.90, 0.02, 4, 0.01),
            "random_real": row(0.80, 0.0, 1, 0.01),
            "full_data": row(0.98),
        },
        "mlp": {"distilled": row(0.7), "random_real": row(0.75)},
    }
    fair = fairness_section(acc)
    conv = fair["convnet"]
    assert conv["ior_hard"] == pytest.approx(0.10) and conv["hlr"] == pytest.approx(0.08)
    assert conv["ior_hard_se"] == pytest.approx((0.02**2 / 4 + 0.01**2 + 0.01**2) ** 0.5)
    alpha = 0.5 * 0.10 - 0.5 * 0.08
    expected = 100 * (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))
    assert conv["lrs"] == pytest.approx(expected)
    assert fair["mlp"] == {"ior_hard": pytest.approx(-0.05), "ior_hard_se": None}

    # a full-data reference cut at its cap is no reference: no HLR, no LRS, and a reason
    acc["convnet"]["full_data"]["converged"] = False
    conv = fairness_section(acc)["convnet"]
    assert "hlr" not in conv and "lrs" not in conv and "did not converge" in conv["hlr_omitted"]


def test_full_data_reference_keeps_its_best_validation_epoch():
    """Training stops once validation accuracy stalls and returns the weights of the best
    validation epoch, whose accuracy it reports."""
    from gandistill.fit import test_accuracy, train_to_convergence

    data = make_tiny_data(per_class=8)
    cfg = load_config(SMOKE, FAST)
    images = data.info.normalize(data.train.images.float() / 255)
    dev = torch.device("cpu")
    net, run = train_to_convergence(
        images, data.train.labels, data.val, data.info, cfg.eval, 0, dev, max_epochs=40, patience=2
    )
    assert run["converged"] and run["best_epoch"] <= run["epochs"] < 40
    assert run["epochs"] >= run["best_epoch"] + 4  # 2 * patience epochs without improvement
    assert test_accuracy(net, data.val, data.info, dev) == run["val_accuracy"]
    _, capped = train_to_convergence(
        images, data.train.labels, data.val, data.info, cfg.eval, 0, dev, max_epochs=2, patience=2
    )
    assert capped["epochs"] == 2 and not capped["converged"] and not capped["out_of_time"]
    _, late = train_to_convergence(
        images, data.train.labels, data.val, data.info, cfg.eval, 0, dev, max_epochs=40,
        patience=2, deadline=time.perf_counter(),
    )  # fmt: skip
    assert late["epochs"] == 1 and late["out_of_time"] and not late["converged"]
    assert not run["out_of_time"]


def test_a_budgeted_report_stops_the_full_data_reference_and_does_not_cache_it(tmp_path, setup):
    """``max_minutes``: the full-data reference stops after the first epoch that ends past the
    budget, its row says so, and it is not cached (the next report trains it again); the sets'
    networks keep the protocol's epochs. A budget that is not positive is a one-line error."""
    cfg, path, data = setup
    out = tmp_path / "report"
    rep = report_mod.evaluate_distilled(
        path, cfg, out=out, profile="quick", data=data, progress=False, max_minutes=1e-6
    )
    full = rep["accuracy"]["convnet"]["full_data"]
    assert full["out_of_time"] and full["epochs"] == [1] and not full["converged"]
    assert "1 epochs, stopped by the time budget, not converged" in (out / "report.md").read_text()
    assert not list((Path(cfg.cache_dir) / report_mod.BASELINE_DIR).glob("*.pt"))
    with pytest.raises(ConfigError, match="max_minutes must be > 0"):
        report_mod.evaluate_distilled(path, cfg, data=data, progress=False, max_minutes=0)


@pytest.mark.parametrize("amp", [False, True])
def test_eval_amp_trains_the_networks_under_bfloat16_autocast(amp, monkeypatch):
    """``eval.amp`` runs the evaluation networks' training forward passes under bfloat16 autocast
    on a CPU with native bf16 (both the protocol's fixed schedule and the full-data run), and
    in float32 when off; the report's protocol line says so."""

    from gandistill import fit
    from gandistill.evaluation.render import AMP_NOTE, protocol_line

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    data = make_tiny_data(per_class=4)
    cfg = load_config(SMOKE, [*FAST, f"eval.amp={amp}"])
    dtypes: list[torch.dtype] = []
    real_fresh = fit._fresh_network

    def hooked(*args, **kwargs):
        net = real_fresh(*args, **kwargs)
        net.register_forward_hook(
            lambda m, i, out: dtypes.append(out.dtype) if m.training else None
        )
        return net

    monkeypatch.setattr(fit, "_fresh_network", hooked)
    images = data.info.normalize(data.train.images.float() / 255)
    dev = torch.device("cpu")
    fit.train_network(images, data.train.labels, data.info, cfg.eval, 0, dev, epochs=1)
    fit.train_to_convergence(
        images, data.train.labels, data.val, data.info, cfg.eval, 0, dev, max_epochs=1, patience=1
    )
    assert len(dtypes) >= 2 and set(dtypes) == {torch.bfloat16 if amp else torch.float32}
    protocol = {"arch": "convnet", "epochs": 3, "augment": "none", "n_models": 1, "amp": amp}
    assert (AMP_NOTE in protocol_line(protocol)) == amp


def test_the_report_marks_networks_at_chance():
    """An architecture with a network at chance is marked in the cross-architecture block, and
    the unseen mean that includes it; a footnote counts them. No network at chance, no mark."""

    def stats(accs):
        return {"mean": sum(accs) / len(accs), "std": 0.0, "accuracies": accs, "binomial_se": 0.01}

    accuracy = {
        "convnet": {"distilled": stats([0.9, 0.92]), "random_real": stats([0.5, 0.52])},
        "alexnet": {"distilled": stats([0.1, 0.7]), "random_real": stats([0.34, 0.36])},
        "mlp": {"distilled": stats([0.6, 0.62]), "random_real": stats([0.39, 0.41])},
    }
    protocols = {a: {"n_models": 2, "epochs": 300, "augment": "none"} for a in accuracy}
    cross = cross_architecture_section(accuracy, protocols, num_classes=10)
    assert cross["at_chance"] == {"alexnet": {"distilled": 1}}
    assert at_chance([0.1, 0.119, 0.121, 0.9], 10) == 2 and at_chance([0.5, 0.51], 2) == 2
    lines = cross_architecture_lines(cross, accuracy)
    alexnet = next(line for line in lines if line.startswith("| alexnet"))
    assert alexnet.split("|")[3].strip().endswith("†")
    assert "†" not in alexnet.split("|")[4]  # its random real networks trained
    mean = next(line for line in lines if "mean of 2 unseen" in line)
    assert mean.split("|")[3].strip().endswith("†") and "†" not in mean.split("|")[4]
    assert lines[-1].startswith("† networks at chance") and "alexnet distilled 1 of 2" in lines[-1]
    accuracy["alexnet"]["distilled"] = stats([0.68, 0.7])
    clean = cross_architecture_section(accuracy, protocols, num_classes=10)
    assert clean["at_chance"] == {}
    assert "†" not in "".join(cross_architecture_lines(clean, accuracy))
