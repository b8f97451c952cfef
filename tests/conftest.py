"""Shared test settings: one torch thread (tiny models on 2 cores), results and builds kept out of the tree
unless a test asks for the real folders."""

import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Send results/ and _build/ of code under test to a temporary folder."""
    monkeypatch.setenv("L6KIT_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("L6KIT_BUILD", str(tmp_path / "build"))
    return tmp_path
