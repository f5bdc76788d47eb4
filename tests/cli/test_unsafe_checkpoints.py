"""Issue 13.9: `fit --ckpt_path <unsafe file>` and `pseudo-label` given an unsafe checkpoint stop
with one line naming the file (never suggesting ``weights_only=False``), exit status 2, and
nothing of the file runs."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pytest
import torch
import yaml

from da_toolkit.cli import main


class _Payload:
    """Unpickling this would create ``marker`` (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mknod, (self.marker,))


def _unsafe(path: Path, marker: Path, legacy: bool = False) -> Path:
    obj = {"state_dict": {}, "global_step": 1, "hyper_parameters": {}, "x": _Payload(marker)}
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def _fit_config(tmp_path: Path) -> Path:
    cfg = {
        "trainer": {"accelerator": "cpu", "max_steps": 1, "logger": False, "enable_progress_bar": False,
                    "enable_checkpointing": False, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "TeacherTask", "init_args": {"model": "tiny", "log_images_every_n_steps": 0}},
        "data": {"class_path": "DepthDataModule",
                 "init_args": {"labeled": [{"class_path": "synthetic", "init_args": {"length": 2, "size": [28, 28]}}],
                               "batch_size": 2, "crop_size": 28, "num_workers": 0}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _without_logging_errors(err: str) -> str:
    """stderr without the "--- Logging error ---" reports of Lightning's log handlers, which in one
    pytest process keep writing to an earlier test's closed capture stream (not our output)."""
    return re.sub(r"--- Logging error ---\n.*?\nArguments: [^\n]*\n", "", err, flags=re.S)


def _one_error_line(err: str, name: str) -> str:
    err = _without_logging_errors(err)
    ours = [line for line in err.splitlines() if line.startswith("da-toolkit")]
    assert len(ours) == 1, err
    assert name in ours[0]
    assert "Traceback" not in err
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err
    return ours[0]


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy-pickle"])
def test_fit_ckpt_path_unsafe_file_is_one_line_exit_2(tmp_path, capsys, legacy):
    marker = tmp_path / "pwned"
    ckpt = _unsafe(tmp_path / "evil.ckpt", marker, legacy)
    assert main(["fit", "--config", str(_fit_config(tmp_path)), "--ckpt_path", str(ckpt)]) == 2
    line = _one_error_line(capsys.readouterr().err, str(ckpt))
    assert "could run code" in line and ("not loaded" in line or "refused" in line)
    assert not marker.exists()


# seeds of random.Random(seed).randbytes(2048) whose bytes make torch's weights-only unpickler
# raise UnpicklingError (0), IndexError (2), KeyError (20), UnicodeDecodeError (195) - each once
# broke the command with a traceback when the bytes came from os.urandom
@pytest.mark.parametrize("seed", [0, 2, 20, 195])
def test_fit_ckpt_path_corrupt_file_is_one_line_exit_2(tmp_path, capsys, seed):
    ckpt = tmp_path / "garbage.ckpt"
    ckpt.write_bytes(random.Random(seed).randbytes(2048))
    assert main(["fit", "--config", str(_fit_config(tmp_path)), "--ckpt_path", str(ckpt)]) == 2
    line = _one_error_line(capsys.readouterr().err, str(ckpt))
    assert "corrupt" in line and "could run code" not in line


def _pl_config(tmp_path: Path, store: Path, teacher: object) -> Path:
    """A two-image pseudo-label job file labelling into ``store`` with ``teacher``."""
    cfg = {"store": str(store), "trainer": {"accelerator": "cpu", "enable_progress_bar": False},
           "model": {"teacher": teacher},
           "data": {"sources": [{"class_path": "synthetic",
                                 "init_args": {"length": 2, "size": [30, 45], "seed": 7, "labeled": False}}],
                    "input_size": 28}}
    path = tmp_path / "pl.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("form", ["file", "preset"])
def test_pseudo_label_unsafe_teacher_is_one_line_exit_2(tmp_path, capsys, form):
    marker = tmp_path / "pwned"
    ckpt = _unsafe(tmp_path / "teacher.ckpt", marker)
    teacher = str(ckpt) if form == "file" else {"preset": "tiny", "weights": str(ckpt)}
    assert main(["pseudo-label", "--config", str(_pl_config(tmp_path, tmp_path / "store", teacher))]) == 2
    line = _one_error_line(capsys.readouterr().err, str(ckpt))
    assert "could run code" in line
    assert not marker.exists()
    assert not (tmp_path / "store").exists()  # refused before anything is written


def test_pseudo_label_refusal_keeps_an_existing_store(tmp_path, capsys):
    ckpt = _unsafe(tmp_path / "teacher.ckpt", tmp_path / "pwned")
    store = tmp_path / "store"
    (store / "rank000").mkdir(parents=True)
    (store / "rank000" / "manifest.jsonl").write_text('{"id": "earlier"}\n')  # work of an earlier run
    teacher = {"preset": "tiny", "weights": str(ckpt)}
    assert main(["pseudo-label", "--config", str(_pl_config(tmp_path, store, teacher))]) == 2
    assert (store / "rank000" / "manifest.jsonl").read_text() == '{"id": "earlier"}\n'
