import pickle
import zipfile

import pytest
import torch

from gandistill.errors import ArtifactError
from gandistill.files import (
    FORMAT_VERSION,
    KIND_GENERATOR,
    atomic_save,
    load_generator_checkpoint,
    load_payload,
)


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "f.pt"
    atomic_save({"a": torch.ones(2)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


def test_missing_truncated_and_foreign_files(tmp_path):
    with pytest.raises(ArtifactError, match="not found"):
        load_payload(tmp_path / "nope.pt", KIND_GENERATOR)
    good = tmp_path / "good.pt"
    atomic_save({"kind": KIND_GENERATOR, "format_version": FORMAT_VERSION}, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ArtifactError, match="not a readable gandistill file"):
        load_payload(truncated, KIND_GENERATOR)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, plain)
    with pytest.raises(ArtifactError, match="not a gandistill file"):
        load_payload(plain, KIND_GENERATOR)
    other = tmp_path / "other.pt"
    atomic_save({"kind": "gandistill.distilled", "format_version": 1}, other)
    with pytest.raises(ArtifactError, match="is a gandistill.distilled, not a gandistill.gen"):
        load_payload(other, KIND_GENERATOR)
    newer = tmp_path / "newer.pt"
    atomic_save({"kind": KIND_GENERATOR, "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(ArtifactError, match="format version"):
        load_payload(newer, KIND_GENERATOR)


def test_code_carrying_pickle_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pt"
    torch.save({"kind": KIND_GENERATOR, "format_version": 1, "x": Evil()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ArtifactError, match="not a readable"):
        load_payload(path, KIND_GENERATOR)
    assert not marker.exists()
    # a raw (non-zip) pickle is refused too
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"kind": KIND_GENERATOR, "x": Evil()}))
    with pytest.raises(ArtifactError):
        load_generator_checkpoint(raw)
    assert not marker.exists()
