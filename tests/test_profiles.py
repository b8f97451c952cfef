import dataclasses

import pytest

from l6kit import profiles


@dataclasses.dataclass(frozen=True)
class Cfg:
    profile: str = "paper"
    seed: int = 0
    lr: float = 1e-3
    n: int = 1000
    name: str = "x"
    ks: tuple[int, ...] = (5, 10)
    limit: int | None = None
    flag: bool = False


PROFILES = {"ci": {"n": 10}, "laptop": {"n": 100}, "paper": {}}


def test_profile_replaces_paper_defaults():
    assert profiles.resolve(Cfg(), PROFILES, "ci").n == 10
    assert profiles.resolve(Cfg(), PROFILES, "paper").n == 1000
    cfg = profiles.resolve(Cfg(), PROFILES, "ci", n=7, lr=1, ks=[1, 2])
    assert (cfg.profile, cfg.n, cfg.lr, cfg.ks) == ("ci", 7, 1.0, (1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n = 3


@pytest.mark.parametrize("bad, match", [
    ({"nn": 3}, "unknown parameter.*nn.*allowed: seed, lr, n, name, ks, limit, flag"),
    ({"n": "3"}, "n expects int"),
    ({"n": True}, "n expects int"),
    ({"ks": [1, "a"]}, "ks expects"),
    ({"limit": 1.5}, "limit expects"),
])
def test_bad_overrides_name_allowed_values(bad, match):
    with pytest.raises(ValueError, match=match):
        profiles.resolve(Cfg(), PROFILES, "ci", **bad)


def test_unknown_profile_lists_profiles():
    with pytest.raises(ValueError, match="allowed: ci, laptop, paper"):
        profiles.resolve(Cfg(), PROFILES, "bogus")


@pytest.mark.parametrize("name, text, expected", [
    ("n", "12", 12), ("lr", "0.5", 0.5), ("ks", "2,5,10", (2, 5, 10)), ("limit", "none", None),
    ("limit", "4", 4), ("flag", "true", True), ("flag", "0", False), ("name", "abc", "abc"),
])
def test_parse_value(name, text, expected):
    assert profiles.parse_value(name, text, profiles.annotations(Cfg)[name]) == expected


@pytest.mark.parametrize("name, text", [("n", "ten"), ("lr", "fast"), ("flag", "maybe"), ("ks", "1,x")])
def test_parse_value_rejects(name, text):
    with pytest.raises(ValueError, match=f"{name} expects"):
        profiles.parse_value(name, text, profiles.annotations(Cfg)[name])


def test_resolve_device():
    assert profiles.resolve_device("auto") in ("cpu", "cuda", "mps")
    assert profiles.resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="allowed: auto, cpu, cuda, mps"):
        profiles.resolve_device("tpu")



def test_setup_makes_the_book_renderer_the_default():
    """A fresh interpreter that imports only ``profiles`` gets the book's renderer from ``setup``."""
    import subprocess
    import sys

    code = ("import types, plotly.io as pio; from l6kit import profiles; before = pio.renderers.default; "
            "profiles.setup(types.SimpleNamespace(seed=0, profile='ci', device='cpu')); "
            "print(before == 'l6kit', pio.renderers.default)")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PLOTLY_RENDERER"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, after = out.stdout.split()
    assert (before, after) == ("False", "l6kit")
