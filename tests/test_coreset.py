"""Coreset baselines: the selection rules on synthetic features, the set file, the CLI."""

import warnings

import pytest
import torch
from conftest import SMOKE, make_tiny_data, tiny_parts
from sklearn.cluster import KMeans

from gandistill import cli, selection
from gandistill.config import load_config
from gandistill.coreset.baselines import METHODS, build_baseline
from gandistill.data import load_dataset
from gandistill.errors import ArtifactError, ConfigError, DataError
from gandistill.files import DistilledSet
from gandistill.runtime import step_generator
from gandistill.selection import select_herding, select_kcenter, select_kmeans, select_random


def gaussian(seed: int, n: int = 200, dim: int = 8) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


def select(method: str, feats: torch.Tensor, ipc: int, seed: int = 0) -> torch.Tensor:
    if method == "random":
        return select_random(len(feats), ipc, step_generator(seed, 0))
    if method == "kmeans":
        return select_kmeans(feats, ipc, seed)
    return {"herding": select_herding, "kcenter": select_kcenter}[method](feats, ipc)


def covering_radius(feats: torch.Tensor, picks: torch.Tensor) -> float:
    return float(torch.cdist(feats, feats[picks]).min(1).values.max())


@pytest.mark.parametrize("method", METHODS)
def test_selection_is_distinct_and_deterministic(method):
    feats = gaussian(0, n=50)
    for ipc in (1, 5, 50):
        picks = select(method, feats, ipc)
        assert picks.dtype == torch.int64 and picks.shape == (ipc,)
        assert len(set(picks.tolist())) == ipc and 0 <= picks.min() and picks.max() < 50
        assert torch.equal(picks, select(method, feats, ipc))


def test_random_differs_across_seeds():
    assert not torch.equal(select("random", gaussian(0), 5, 0), select("random", gaussian(0), 5, 1))


@pytest.mark.parametrize("method", ("kcenter", "kmeans", "herding"))
def test_duplicate_points_still_give_distinct_indices(method):
    feats = gaussian(1, n=4).repeat(3, 1)  # every point three times
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means: fewer distinct points than clusters
        picks = select(method, feats, 12)
    assert sorted(picks.tolist()) == list(range(12))


def test_herding_matches_the_mean_better_than_random():
    herd, rand = [], []
    for seed in range(8):
        feats = gaussian(seed)
        mu = feats.mean(0)
        herd.append(float((feats[select_herding(feats, 5)].mean(0) - mu).norm()))
        rand.append(float((feats[select("random", feats, 5, seed)].mean(0) - mu).norm()))
    assert sum(herd) / len(herd) < 0.5 * sum(rand) / len(rand)


def test_herding_first_pick_is_the_point_nearest_the_mean():
    feats = gaussian(2)
    nearest = int((feats - feats.mean(0)).norm(dim=1).argmin())
    assert int(select_herding(feats, 1)[0]) == nearest
    assert int(select_kcenter(feats, 1)[0]) == nearest


def test_kcenter_covers_better_than_random():
    for seed in range(4):
        feats = gaussian(seed)
        radius = covering_radius(feats, select_kcenter(feats, 5))
        assert radius <= covering_radius(feats, select("random", feats, 5, seed))


def test_kmeans_picks_the_points_nearest_the_centroids():
    feats = gaussian(3)
    picks = select_kmeans(feats, 5, seed=7)
    km = KMeans(n_clusters=5, n_init=selection.KMEANS_INITS, random_state=7).fit(feats.double())
    centroids = torch.from_numpy(km.cluster_centers_)
    nearest = torch.cdist(centroids, feats.double()).argmin(1)
    assert len(set(nearest.tolist())) == 5  # so the nearest points are the answer
    assert picks.tolist() == nearest.tolist()
    assert torch.equal(select_kmeans(feats, 5, seed=7), picks)


# --- the set file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke config with a classifier cache shared by this module's tests."""
    cache = tmp_path_factory.mktemp("cache")
    return load_config(SMOKE, [f"cache_dir={cache}"])


@pytest.fixture(scope="module")
def mnist(smoke):
    return load_dataset(smoke.data)


@pytest.mark.parametrize("method", METHODS)
def test_build_baseline_writes_a_set_of_real_training_images(smoke, mnist, tmp_path, method):
    train, info = mnist.train, mnist.info
    out = tmp_path / "set.pt"
    ds = build_baseline(smoke, method, ipc=3, out=out, data=mnist)
    loaded = DistilledSet.load(out)
    assert loaded.space == "real" and loaded.stop_reason == f"baseline:{method}"
    assert loaded.ipc == 3 and loaded.config.distill.ipc == 3
    assert loaded.labels.tolist() == [c for c in range(info.num_classes) for _ in range(3)]
    assert loaded.teacher_logits.shape == (3 * info.num_classes, info.num_classes)
    entry = loaded.history[-1]
    assert entry["seconds"] >= 0 and entry["method"] == method
    idx = torch.tensor(entry["train_indices"])
    assert torch.equal(loaded.images_uint8, train.images[idx])
    assert torch.equal(train.labels[idx], loaded.labels)
    assert torch.allclose(loaded.images_float, info.normalize(train.images[idx].float() / 255))
    for img, y in zip(loaded.images_uint8, loaded.labels.tolist(), strict=True):
        same = (train.images[train.class_indices[y]] == img).flatten(1).all(1)
        assert same.any()
    assert torch.equal(ds.images_uint8, loaded.images_uint8)
    again = build_baseline(smoke, method, ipc=3, data=mnist)
    assert again.history[-1]["train_indices"] == entry["train_indices"]
    with pytest.raises(ArtifactError, match="real training images"):
        loaded.decode()


def test_build_baseline_rejects_bad_requests(smoke):
    data = make_tiny_data(per_class=4)
    with pytest.raises(ConfigError, match="random, herding, kcenter, kmeans"):
        build_baseline(smoke, "coreset", ipc=1, data=data)
    with pytest.raises(ConfigError, match="ipc must be >= 1"):
        build_baseline(smoke, "random", ipc=0, data=data)
    with pytest.raises(DataError, match="ipc 5 exceeds the 4 training images of class 0"):
        build_baseline(smoke, "random", ipc=5, data=data)


def test_report_reads_a_baseline_set(tmp_path):
    from gandistill.evaluation.report import evaluate_distilled

    train, test, info = tiny_parts(per_class=12)
    data_file = tmp_path / "tiny.pt"
    split = {"images": train.images, "labels": train.labels}
    torch.save(split | {"test_images": test.images, "test_labels": test.labels}, data_file)
    fast = ["eval.epochs=3", "eval.n_models=1", "data.name=tensors", f"data.root={data_file}"]
    cfg = load_config(SMOKE, [f"cache_dir={tmp_path}", *fast])
    data = load_dataset(cfg.data)
    ds = build_baseline(cfg, "herding", ipc=2, out=tmp_path / "set.pt", data=data)
    assert ds.space == "real"
    rep = evaluate_distilled(
        tmp_path / "set.pt", cfg, out=tmp_path / "rep", data=data, progress=False
    )
    assert rep["source"]["space"] == "real" and rep["source"]["ipc"] == 2
    assert "real space" in (tmp_path / "rep" / "report.md").read_text()


# --- the CLI --------------------------------------------------------------------------------


def test_cli_baseline(smoke, tmp_path, capsys):
    out = tmp_path / "set.pt"
    args = ["baseline", "--config", SMOKE, "--set", f"cache_dir={smoke.cache_dir}"]
    code = cli.main([*map(str, args), "--method", "kcenter", "--ipc", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "2 per class × 10 classes" in printed
    assert DistilledSet.load(out).stop_reason == "baseline:kcenter"

    # the file exists now: refused without --overwrite
    assert cli.main([*map(str, args), "--method", "random", "--ipc", "2", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    for method, ipc, fragment in (
        ("coreset", 2, "unknown baseline method"),
        ("random", 10**6, "ipc"),
    ):
        bad = tmp_path / f"{method}.pt"
        code = cli.main([*map(str, args), "--method", method, "--ipc", str(ipc), "--out", str(bad)])
        assert code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gandistill: error:") and fragment in err[0]
        assert not bad.exists()
