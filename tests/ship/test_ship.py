"""The last mile: predict CLI, safe loading, weights-only export, fresh processes, the Gradio app."""

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from io import StringIO

import pandas as pd
import pytest
from conftest import run_cli, write_experiment

pytestmark = pytest.mark.slow

CLASSES = ["lung_aca", "lung_n", "lung_scc"]


@pytest.fixture(scope="module")
def shipped(lc_subset, tmp_path_factory):
    """A tiny real run on real tiles, exported as pickle and as safetensors."""
    work = tmp_path_factory.mktemp("ship")
    exp = write_experiment(
        work / "e.toml",
        name="ship",
        data_dir=str(lc_subset / "lung_image_sets"),
        backbones=["tiny"],
        img_size=32,
        batch_size=16,
        epochs=1,
        pretrained=False,
        results_dir=str(work / "results"),
        max_per_class=30,
    )
    assert run_cli("run", exp, cwd=work).returncode == 0
    out = work / "results" / "ship"
    for args in (("--out", work / "lung.pkl"), ("--format", "safetensors", "--out", work / "lung.safetensors")):
        r = run_cli("export", out, *args, cwd=work)
        assert r.returncode == 0, r.stderr
    tiles = work / "tiles" / "nested"
    tiles.mkdir(parents=True)
    for c in CLASSES:
        for f in sorted((lc_subset / "lung_image_sets" / c).iterdir())[:2]:
            shutil.copy(f, tiles / f.name)
    (work / "tiles" / "notes.jpeg").write_text("not an image")
    return work, out


def predict_csv(result) -> pd.DataFrame:
    assert result.returncode == 0, result.stderr
    return pd.read_csv(StringIO(result.stdout), keep_default_na=False)


def test_predict_folder_recursively_with_one_bad_file(shipped):
    work, _ = shipped
    table = predict_csv(run_cli("predict", work / "lung.pkl", work / "tiles", cwd=work))
    assert list(table.columns) == ["path", "predicted", *CLASSES, "refer", "error"]
    assert len(table) == 7
    bad = table[table.path.str.endswith("notes.jpeg")].iloc[0]
    assert bad.predicted == "" and "UnidentifiedImageError" in bad.error
    good = table[table.error == ""]
    assert len(good) == 6 and set(good.predicted) <= set(CLASSES)
    probs = good[CLASSES].astype(float)
    assert (probs.sum(axis=1) - 1).abs().max() < 1e-4
    assert (good.predicted == probs.idxmax(axis=1)).all()
    threshold = json.loads((work / "lung.pkl.json").read_text())["refer_below"]
    expected = probs.max(axis=1) < (float("inf") if threshold is None else threshold)  # None: 99% never reached
    assert (good.refer.astype(str) == expected.map(str)).all() and str(bad.refer) == "False"


def test_the_model_predicts_in_its_recorded_precision_and_says_when_it_does_not(shipped):
    work, _ = shipped
    described = json.loads((work / "lung.pkl.json").read_text())
    recorded, pairs = described["precision"], described["parity"]["pairs"]
    assert recorded in ("fp32", "bf16") and set(pairs) == {"bf16|fp32", "bf16|onnx", "fp32|onnx"}
    assert pairs["fp32|onnx"]["max_gap"] < 1e-4 and described["parity"]["n"] > 0
    same = run_cli("predict", work / "lung.pkl", work / "tiles" / "nested", cwd=work)
    assert same.returncode == 0 and "note:" not in same.stderr  # its own precision, whatever this CPU has
    other = "fp32" if recorded == "bf16" else "bf16"
    forced = run_cli("predict", work / "lung.pkl", work / "tiles" / "nested", "--precision", other, cwd=work)
    notes = [line for line in forced.stderr.splitlines() if "thresholded in" in line]
    assert forced.returncode == 0 and len(notes) == 1, forced.stderr
    gap = pairs["bf16|fp32"]["max_gap"]
    assert f"in {recorded}; it predicts in {other}" in notes[0] and f"gap of {gap:.2g}" in notes[0]
    card = (work / "lung.pkl.md").read_text()
    assert "## Precision" in card and f"made in **{recorded}**" in card and "bf16 vs fp32" in card


def test_parity_is_measured_once_per_model_tiles_and_machine(shipped, monkeypatch, tmp_path):
    from lungfast.results import record
    from lungfast.results.layout import RunDir
    from lungfast.ship import parity

    work, _ = shipped
    run = RunDir(json.loads((work / "lung.pkl.json").read_text())["source_run"])
    rec, measured, real = record.read(run), [], parity.probabilities
    monkeypatch.setattr(parity, "probabilities", lambda *a: measured.append(1) or real(*a))
    monkeypatch.setenv("LUNGFAST_CACHE", str(tmp_path))
    first = parity.measure(run, rec, True)
    assert parity.measure(run, rec, True) == first and len(measured) == 1  # the second export reads it back
    rec.referral = {**rec.referral, "threshold": 0.123}  # another referral threshold: measured anew
    again = parity.measure(run, rec, True)
    assert len(measured) == 2 and again["pairs"].keys() == first["pairs"].keys()


def test_predict_tta_and_out_file(shipped):
    work, _ = shipped
    r = run_cli("predict", work / "lung.pkl", work / "tiles" / "nested", "--tta", "--out", work / "p.csv", cwd=work)
    assert r.returncode == 0, r.stderr
    tta = pd.read_csv(work / "p.csv")
    plain = predict_csv(run_cli("predict", work / "lung.pkl", work / "tiles" / "nested", cwd=work))
    assert len(tta) == 6 and (tta[CLASSES].sum(axis=1) - 1).abs().max() < 1e-4
    assert not tta[CLASSES].equals(plain[CLASSES].astype(float))  # augmentation changed the numbers


def test_safetensors_predictions_match_the_pickle(shipped):
    work, _ = shipped
    a = predict_csv(run_cli("predict", work / "lung.pkl", work / "tiles", cwd=work))
    b = predict_csv(run_cli("predict", work / "lung.safetensors", work / "tiles", cwd=work))
    ok = a.error == ""
    assert (a.predicted == b.predicted).all()
    assert (a[ok][CLASSES].astype(float) - b[ok][CLASSES].astype(float)).abs().max().max() < 1e-5
    meta = json.loads((work / "lung.safetensors.json").read_text())
    assert meta["backbone"] == "tiny" and meta["vocab"] == CLASSES and meta["img_size"] == 32


def test_pickles_load_only_when_vouched_for(shipped, tmp_path):
    work, out = shipped
    run_pkl = next(out.glob("runs/tiny/seed0/learner.pkl"))
    tile = next((work / "tiles" / "nested").iterdir())
    for vouched in (run_pkl, work / "lung.pkl"):
        assert run_cli("predict", vouched, tile).returncode == 0
    copy = tmp_path / "lung.pkl"
    shutil.copy(work / "lung.pkl", copy)
    refused = run_cli("predict", copy, tile)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("lungfast: error: ")
    assert "runs any code" in refused.stderr and "--trust" in refused.stderr
    assert run_cli("predict", copy, tile, "--trust").returncode == 0
    tampered = tmp_path / "t" / "lung.pkl"
    tampered.parent.mkdir()
    shutil.copy(work / "lung.pkl", tampered)
    shutil.copy(work / "lung.pkl", work / "lung2.pkl")
    with open(work / "lung2.pkl", "ab") as f:
        f.write(b"\0")
    assert run_cli("predict", work / "lung2.pkl", tile).returncode == 2  # changed after lungfast wrote it


def test_fresh_process_elsewhere_gets_identical_predictions(shipped, tmp_path):
    work, _ = shipped
    tiles = sorted(str(p) for p in (work / "tiles" / "nested").iterdir())
    code = textwrap.dedent(f"""
        import sys, warnings; warnings.simplefilter("ignore")
        from fastai.learner import load_learner
        from lungfast.ship import model_io
        tiles = {tiles!r}
        a = load_learner({str(work / "lung.pkl")!r})
        b = model_io.load({str(work / "lung.safetensors")!r}, precision="fp32")
        pa = a.get_preds(dl=a.dls.test_dl(tiles))[0]
        pb = b.get_preds(dl=b.dls.test_dl(tiles))[0]
        print(float((pa - pb).abs().max()), list(a.dls.vocab) == list(b.dls.vocab), "__main__" not in str(a.dls))
    """)
    fresh = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    diff, same_vocab, _ = fresh.stdout.split()
    assert float(diff) < 1e-5 and same_vocab == "True"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gradio_app_predicts_through_the_real_client(shipped):
    from gradio_client import Client, handle_file

    work, _ = shipped
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lungfast.cli", "app", str(work / "lung.safetensors"), "--port", str(port)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(1)
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        tile = next((work / "tiles" / "nested").iterdir())
        label, overlay, verdict = client.predict(handle_file(str(tile)), api_name="/predict")
        assert label["label"] in CLASSES
        assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 1e-4
        from PIL import Image

        assert Image.open(overlay).size == (32, 32)
        with pytest.raises(Exception, match="not an image lungfast can read") as refused:  # lungfast's words
            client.predict(handle_file(str(work / "tiles" / "notes.jpeg")), api_name="/predict")
        assert "/tmp" not in str(refused.value) and "notes.jpeg" not in str(refused.value)
        top = max(c["confidence"] for c in label["confidences"])
        threshold = json.loads((work / "lung.safetensors.json").read_text())["refer_below"]
        assert ("refer to a pathologist" in verdict) == (threshold is None or top < threshold), verdict
        assert f"{top:.3f}" in verdict
        again, _, _ = client.predict(handle_file(str(tile)), api_name="/predict")  # still serving
        assert again["label"] == label["label"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_app_refuses_huge_and_broken_uploads_with_a_message(tmp_path, monkeypatch):
    from PIL import Image

    from lungfast.ship import app

    Image.new("L", (8000, 8000)).save(tmp_path / "huge.png")

    def no_decoding(path):
        raise AssertionError("an oversize upload must be refused from its header, before any decoding")

    with monkeypatch.context() as m:
        m.setattr(app, "unreadable_reason", no_decoding)
        assert "limit is 50 megapixels" in app.check_upload(str(tmp_path / "huge.png"))
    (tmp_path / "x.jpeg").write_text("no")
    assert "not an image" in app.check_upload(str(tmp_path / "x.jpeg"))
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    assert app.check_upload(str(tmp_path / "ok.png")) is None and app.check_upload(None)


@pytest.mark.parametrize("damage", ["truncated_weights", "bad_json", "other_backbone", "no_json"])
def test_a_damaged_safetensors_export_is_one_clear_line(shipped, tmp_path, damage):
    work, _ = shipped
    model, meta = tmp_path / "lung.safetensors", tmp_path / "lung.safetensors.json"
    shutil.copy(work / "lung.safetensors", model)
    shutil.copy(work / "lung.safetensors.json", meta)
    if damage == "truncated_weights":
        model.write_bytes(model.read_bytes()[:1000])
    elif damage == "bad_json":
        meta.write_text(meta.read_text()[:30])
    elif damage == "other_backbone":
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "backbone": "xresnet18"}))
    else:
        meta.unlink()
    tile = next((work / "tiles" / "nested").iterdir())
    for cmd in (("predict", model, tile), ("app", model, "--port", "1")):
        r = run_cli(*cmd, timeout=300)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith("lungfast: error: ") and "export it again" in last or "export again" in last, last


def test_predict_reads_a_16_bit_scan_as_the_picture_it_is(shipped, lc_subset, tmp_path):
    """The same real tile as 8-bit and as 16-bit grey gets the same probabilities (PIL alone would hand the
    model an all-white tile); a float image is refused in its row, and the rest still run."""
    import numpy as np
    from PIL import Image

    work, _ = shipped
    source = sorted((lc_subset / "lung_image_sets" / "lung_scc").iterdir())[0]
    grey = np.asarray(Image.open(source).convert("L"))
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    Image.fromarray(grey.astype(np.float32) / 255).save(tmp_path / "float.tif")
    Image.new("RGB", grey.shape[::-1], "white").save(tmp_path / "white.png")
    table = predict_csv(run_cli("predict", work / "lung.pkl", tmp_path, cwd=work)).set_index("path")
    row = lambda name: table.loc[str(tmp_path / name)]  # noqa: E731
    eight, sixteen, white = (row(n)[CLASSES].astype(float) for n in ("grey8.png", "grey16.png", "white.png"))
    assert np.abs(eight.to_numpy() - sixteen.to_numpy()).max() < 1e-6
    assert np.abs(sixteen.to_numpy() - white.to_numpy()).max() > 1e-3  # not what a blank tile gets
    assert row("float.tif").predicted == "" and "save it as 8-bit RGB" in row("float.tif").error
