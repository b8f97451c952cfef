"""The UoMH experiment functions: the required claims hold for seeds 0-4 (not one lucky seed), and the
paper profile is wired to the real data sets."""

import pytest

from l6kit import claims
from l6kit.papers import uomh


@pytest.mark.parametrize("seed", range(5))
def test_required_claims_hold_for_five_seeds(seed):
    cfg = uomh.config("ci", seed=seed)
    book = claims.ClaimBook("uomh", cfg)
    uomh.record_recovery_claims(book, cfg, uomh.manifold_recovery(cfg))
    tables = {name: uomh.class_dimensions(cfg, uomh.load_images(cfg, name)) for name in cfg.datasets}
    uomh.record_union_claims(book, cfg, tables)
    required = [c for c in book.claims if "ci" in c.required_at]
    assert len(required) == 6
    assert all(c.holds for c in required), [c.name for c in required if not c.holds]


def test_profiles_and_validation():
    assert uomh.config("paper").datasets == ("mnist", "fashion-mnist", "svhn", "cifar10")
    assert uomh.config("ci").datasets == ("digits",)
    with pytest.raises(ValueError, match="known: "):
        uomh.config("ci", datasets=("imagenet",))
    with pytest.raises(ValueError, match="k and ks must be >= 3"):
        uomh.config("ci", k=2)


def test_summary_table_puts_paper_values_beside_ours():
    cfg = uomh.config("ci", n_boot=2)
    table = uomh.class_dimensions(cfg, uomh.load_images(cfg, "digits"))
    summary = uomh.summary_table({"digits": table, "mnist": table.assign(dataset="mnist")}, cfg.k)
    assert summary.loc[1, "class median (paper)"] == 13.8
    assert summary.loc[0, "classes, lowest to highest ID"].startswith("1 < ")
