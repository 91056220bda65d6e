"""Domain profile (lookout_train.domain): the statistic flags off-manifold embeddings, the CLI writes a
profile the Go engine accepts, and Python's distances equal the golden the Go engine is tested against."""
import json
import os
import shutil

import numpy as np
from conftest import REPO
from lookout_train import domain

DEMO = os.path.join(REPO, "models/demo")
GOLDEN = os.path.join(REPO, "testdata/golden/domain.tsv")


def test_fit_flags_points_off_the_training_subspace():
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.normal(size=(64, 6)))[0].T  # 6 directions in 64 dims
    def sample(n, off=0.0, scale=3.0):
        x = rng.normal(size=(n, 6)) * scale @ basis + rng.normal(size=(n, 64)) * 0.05
        return x + off * rng.normal(size=(n, 64))
    prof, stats = domain.fit(sample(4000), 99.5, k=6)
    thr = prof["threshold"]
    assert stats["fit_frames"] == 2000 and stats["explained_variance"] > 0.99
    held_in = domain.distances(prof, sample(2000))
    assert np.mean(held_in <= thr) >= 0.98
    # Far along the training directions is still in domain; off them is not.
    far = domain.distances(prof, sample(500, scale=15.0))
    off = domain.distances(prof, sample(500, off=0.2))
    assert np.mean(off > thr) == 1.0
    assert np.mean(far <= thr) >= 0.9


def test_fit_cli_writes_a_small_profile(tiny_dataset, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(os.path.join(REPO, "testdata/models/tiny-vit-gpt2"), model)
    rc = domain.main(["fit", "--model", str(model), "--data", tiny_dataset, "--components", "4",
                      "--percentile", "99", "--trained-on", "tiny fixture scenes"])
    assert rc == 0
    p = json.loads((model / "domain_profile.json").read_text())
    hidden = json.loads((model / "config.json").read_text())["decoder"]["n_embd"]
    assert p["version"] == 1 and p["trained_on"] == "tiny fixture scenes"
    assert p["rank"] == 4 and len(p["components"]) == 4 and all(len(c) == hidden for c in p["components"])
    assert len(p["mean"]) == hidden and p["threshold"] > 0
    assert p["calibration"]["fit_frames"] == 24 and p["calibration"]["calibration_frames"] == 24


def test_fit_cli_names_a_missing_dataset(tmp_path, capsys):
    assert domain.main(["fit", "--model", DEMO, "--data", str(tmp_path / "none"), "--trained-on", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert "captions.jsonl" in err and "\n" not in err


def test_distances_match_the_golden_the_go_engine_matches():
    rows = [line.split("\t") for line in open(GOLDEN).read().splitlines()]
    assert len(rows) >= 4
    prof = domain.load_profile(DEMO)
    got = domain.distances(prof, domain.Encoder(DEMO).pooled_files([os.path.join(REPO, r[0]) for r in rows]))
    for (path, want, flag), d in zip(rows, got):
        assert abs(d - float(want)) <= 2e-6, path
        assert (d <= prof["threshold"]) == (flag == "true"), path
    # Both kinds occur: synthetic frames in domain, the procedural test images out.
    assert {r[2] for r in rows} == {"true", "false"}


def test_export_domain_data_needs_trained_on(tmp_path, capsys):
    from lookout_train import export

    assert export.main(["--ckpt", str(tmp_path), "--out", str(tmp_path / "o"), "--domain-data", str(tmp_path)]) == 2
    assert "--trained-on" in capsys.readouterr().err
