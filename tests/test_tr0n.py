"""The TR0N experiment functions: the required claims hold over seeds 0-4 at ci (seeds 0-2 here, 3-4 marked
slow; about 20 s per seed on one CPU thread), the figures build, and the paper profile is wired to MNIST."""

import numpy as np
import pytest

from l6kit import claims, data
from l6kit.papers import tr0n


def _run(seed):
    cfg = tr0n.config("ci", seed=seed)
    images = tr0n.load_images(cfg)
    models = tr0n.train_models(cfg, images)
    pairs = tr0n.train_translator(cfg, models)
    run = tr0n.sample_and_refine(cfg, models, pairs["translator"])
    table = tr0n.sampler_table(cfg, run, images)
    book = claims.ClaimBook(tr0n.SLUG, cfg)
    tr0n.record_claims(book, cfg, run, table)
    return cfg, images, models, pairs, run, table, book


def _check_required(book):
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 4
    assert all(c.holds for c in required), [(c.name, c.measured) for c in required if not c.holds]


def test_seed0_claims_figures_and_artifacts(tmp_path):
    cfg, images, models, pairs, run, table, book = _run(0)
    _check_required(book)
    assert set(run["curve"]["step"]) == set(range(cfg.langevin_steps + 1))
    assert len(run["requested"]) == 10 * cfg.n_per_class
    per_class = tr0n.per_class_table(run, 10, cfg.compare_steps)
    assert per_class.shape == (10, 4)
    assert tr0n.samples_figure(run, cfg, images.images.shape[1:]).data
    assert tr0n.langevin_curves_figure(run["curve"], cfg.target_accuracy, 2.0).data
    assert tr0n.per_class_figure(per_class).data
    assert tr0n.latent_figure(pairs, pairs["translator"]).data
    reach = tr0n.steps_to_target(run["curve"], cfg.target_accuracy, cfg.langevin_steps)
    assert "steps to" in tr0n.paper_vs_run(cfg, table, reach).iloc[1]["this run"]
    path = tr0n.save_latents(tmp_path / "tr0n-latents.npz", pairs, run)
    assert path.exists()
    assert set(tr0n.real_accuracies(models, images)) == {"aux", "evaluator"}


@pytest.mark.parametrize("seed", [1, 2])
def test_required_claims_hold(seed):
    _check_required(_run(seed)[-1])


@pytest.mark.slow
@pytest.mark.parametrize("seed", [3, 4])
def test_required_claims_hold_more_seeds(seed):
    _check_required(_run(seed)[-1])


def test_steps_to_target_marks_unreached():
    import pandas as pd

    curve = pd.DataFrame({"init": ["a"] * 3 + ["b"] * 3, "step": [0, 1, 2] * 2,
                          "accuracy": [0.1, 0.5, 0.95, 0.1, 0.2, 0.3]})
    assert tr0n.steps_to_target(curve, 0.9, 2) == {"a": 2.0, "b": 3.0}


def test_profiles_and_validation():
    assert tr0n.config("ci").dataset == "digits"
    paper = tr0n.config("paper")
    assert paper.dataset == "mnist" and data.get("mnist").files
    assert paper.latent_dim > tr0n.config("ci").latent_dim and np.prod(paper.vae_hidden) > 128
    with pytest.raises(ValueError, match="unknown parameter"):
        tr0n.config("ci", n_pair=3)
    with pytest.raises(ValueError, match="known"):
        tr0n.config("ci", dataset="imagenet")
    with pytest.raises(ValueError, match="compare_steps"):
        tr0n.config("ci", compare_steps=99)


def _write_idx(path, array):
    import gzip
    import struct

    codes = {np.dtype(np.uint8): 0x08}
    header = struct.pack(">HBB", 0, codes[array.dtype], array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))


def test_paper_profile_pipeline_on_an_mnist_fixture(tmp_path, monkeypatch):
    """The paper profile's code path (28x28 MNIST read by l6kit's IDX reader, the paper-size networks) on a
    tiny fixture in the real file format; ``data.load`` is redirected to it so nothing touches the network."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 6)
    imgs = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels)
    calls = []

    def fake_load(name, profile, **kwargs):
        calls.append((name, profile, kwargs))
        return data.images.read_mnist(tmp_path, **kwargs)

    monkeypatch.setattr(tr0n.data, "load", fake_load)
    cfg = tr0n.config("paper", device="cpu", vae_epochs=1, clf_epochs=1, n_pairs=300, translator_epochs=1,
                      n_per_class=3, langevin_steps=2, compare_steps=1)
    images = tr0n.load_images(cfg)
    assert calls == [("mnist", "paper", {"split": "train"})] and images.images.shape == (60, 28, 28)
    models = tr0n.train_models(cfg, images)
    pairs = tr0n.train_translator(cfg, models)
    assert pairs["z"].shape == (300, cfg.latent_dim) and pairs["c"].shape == (300, 10)
    run = tr0n.sample_and_refine(cfg, models, pairs["translator"])
    table = tr0n.sampler_table(cfg, run, images)
    assert run["snapshots"]["translator"][2]["x"].shape == (30, 784)
    assert tr0n.samples_figure(run, cfg, images.images.shape[1:]).data
    book = claims.ClaimBook(tr0n.SLUG, cfg)
    tr0n.record_claims(book, cfg, run, table)
    assert len(book.claims) == 7
