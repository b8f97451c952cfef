import subprocess
import sys
import textwrap

import pytest
import torch

from l6kit.train import EarlyStopping, fit


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.Dropout(0.1), torch.nn.Linear(16, 1))

    def loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x).squeeze(-1), y)


def make_loader(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)


def test_fit_learns_and_is_reproducible():
    torch.manual_seed(0)
    a = Regressor()
    hist = fit(a, make_loader(), epochs=30, lr=1e-2, device="cpu", seed=1)
    assert hist.losses[-1] < 0.1 * hist.losses[0] and hist.epochs_run == 30
    torch.manual_seed(0)
    b = Regressor()
    fit(b, make_loader(), epochs=30, lr=1e-2, device="cpu", seed=1)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_early_stopping_and_bad_optimizer():
    hist = fit(Regressor(), make_loader(), epochs=50, lr=0.0, device="cpu", callbacks=[EarlyStopping(2)])
    assert hist.stopped_early and hist.epochs_run < 50
    with pytest.raises(ValueError, match="allowed: adam, adamw, sgd"):
        fit(Regressor(), make_loader(), epochs=1, optimizer="lbfgs")


SCRIPT = textwrap.dedent("""
    import os, torch
    from test_train import Regressor, make_loader
    from l6kit.train import fit
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = Regressor()
    def crash(state):
        if state["epoch"] == 3 and {crash}:
            os._exit(17)              # killed right after the epoch-3 checkpoint, no cleanup
    fit(model, make_loader(), epochs=6, lr=1e-2, device="cpu", seed=2, ckpt={ckpt!r}, callbacks=[crash])
    torch.save(model.state_dict(), {out!r})
""")


def test_killed_run_resumes_to_the_same_parameters(tmp_path):
    tests = str(__import__("pathlib").Path(__file__).parent)

    def run(crash, ckpt, out):
        code = SCRIPT.format(crash=crash, ckpt=str(ckpt), out=str(out))
        # `python -c` puts its working directory first on sys.path, so the script imports this module
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tests)

    assert run(False, tmp_path / "straight.pt", tmp_path / "straight_final.pt").returncode == 0
    killed = run(True, tmp_path / "resumed.pt", tmp_path / "unused.pt")
    assert killed.returncode == 17 and (tmp_path / "resumed.pt").exists()
    assert not (tmp_path / "unused.pt").exists()
    state = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert state["epoch"] == 3
    assert run(False, tmp_path / "resumed.pt", tmp_path / "resumed_final.pt").returncode == 0
    straight = torch.load(tmp_path / "straight_final.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed_final.pt", weights_only=True)
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
