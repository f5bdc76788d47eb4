"""Tests of DepthDataModule: batch contract, ratios, bad samples, Lightning integration."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from da_toolkit.data.datamodule import DepthDataModule
from da_toolkit.data.errors import SampleReadError
from da_toolkit.data.robust import SafeDataset
from da_toolkit.data.sources import ImageFolder, PairedFolder, SyntheticScenes
from da_toolkit.data.transforms import EvalTransform


def _first(loader):
    batch = next(iter(loader))
    return batch[0] if isinstance(batch, tuple) else batch


def _dm(**kw):
    args = dict(
        labeled=[SyntheticScenes(6, (20, 30), seed=0), SyntheticScenes(4, (16, 16), seed=1)],
        unlabeled=[SyntheticScenes(24, (24, 24), seed=2, labeled=False)],
        val=[SyntheticScenes(3, (20, 30), seed=3), SyntheticScenes(2, (18, 14), seed=4)],
        crop_size=14,
        batch_size=2,
    )
    args.update(kw)
    return DepthDataModule(**args)


def test_training_batch_contract_and_ratio():
    dm = _dm()
    b = _first(dm.train_dataloader())
    lab, unl = b["labeled"], b["unlabeled"]
    assert lab["image"].shape == (2, 3, 14, 14) and lab["image"].dtype == torch.float32
    assert 0 <= lab["image"].min() and lab["image"].max() <= 1
    assert lab["depth"].shape == (2, 14, 14) and lab["valid"].dtype == torch.bool
    assert lab["depth_kind"] == ["metric", "metric"] and len(lab["meta"]) == 2
    assert unl["image"].shape == (4, 3, 14, 14) and "depth" not in unl  # 1:2
    assert set(unl) <= {"image", "meta", "intrinsics"}
    # the longer stream (24 unlabeled / 4 = 6 batches) sets the epoch; labeled (10 / 2) cycles
    loader = dm.train_dataloader()
    iter(loader)
    assert len(loader) == 6


def test_only_one_stream_and_custom_ratio():
    dm = _dm(unlabeled=None)
    assert set(_first(dm.train_dataloader())) == {"labeled"}
    dm = _dm(labeled=None)
    assert _first(dm.train_dataloader())["unlabeled"]["image"].shape[0] == 2
    dm = _dm(unlabeled_ratio=3)
    assert _first(dm.train_dataloader())["unlabeled"]["image"].shape[0] == 6
    with pytest.raises(ValueError, match="labeled"):
        DepthDataModule().train_dataloader()


def test_labeled_stream_rejects_unlabeled_sources(tmp_path):
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "a.png")
    dm = _dm(labeled=[ImageFolder(tmp_path)], unlabeled=None)
    with pytest.raises(ValueError, match="has no depth"):
        _first(dm.train_dataloader())


def test_validation_full_size_batch_one_and_padding():
    dm = _dm()
    sizes = [tuple(b["image"].shape[-2:]) for b in dm.val_dataloader()]
    assert sizes == [(20, 30)] * 3 + [(18, 14)] * 2
    b = next(iter(dm.val_dataloader()))
    np.testing.assert_allclose(b["depth"][0].numpy(), SyntheticScenes(3, (20, 30), seed=3)[0]["depth"])
    dm = _dm(eval_batch_size=5, pad_eval_batches=True)
    (b,) = list(dm.val_dataloader())
    assert b["image"].shape == (5, 3, 20, 30) and not b["valid"][4, 18:].any()
    with pytest.raises(ValueError, match="different sizes"):
        list(_dm(eval_batch_size=5).val_dataloader())
    with pytest.raises(ValueError, match="test"):
        dm.test_dataloader()


def test_predict_loader_carries_image_refs(tmp_path):
    Image.fromarray(np.zeros((9, 11, 3), np.uint8)).save(tmp_path / "a.png")
    dm = DepthDataModule(predict=[ImageFolder(tmp_path)])
    b = next(iter(dm.predict_dataloader()))
    assert b["image"].shape == (1, 3, 9, 11) and b["meta"][0]["image_ref"]["path"].endswith("a.png")


def test_shuffle_is_seeded():
    ids = lambda dm: [m["id"] for m in _first(dm.train_dataloader())["unlabeled"]["meta"]]  # noqa: E731
    assert ids(_dm(seed=1)) == ids(_dm(seed=1))
    assert any(ids(_dm(seed=1)) != ids(_dm(seed=s)) for s in (2, 3, 4))


class _Flaky(torch.utils.data.Dataset):
    def __init__(self, bad):
        self.inner = SyntheticScenes(6, (8, 8))
        self.bad = bad

    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i in self.bad:
            raise SampleReadError(f"/data/bad_{i}.png", "corrupt or truncated image")
        return self.inner[i]


def test_bad_samples_are_skipped_with_a_running_count(caplog):
    safe = SafeDataset(_Flaky({1, 2}), EvalTransform(), stream="labeled")
    with caplog.at_level(logging.WARNING, logger="da_toolkit.data"):
        item = safe[1]
    assert item["meta"]["id"] == "seed0/00000003"  # next readable sample
    assert safe.skipped == 2
    assert "bad_1.png" in caplog.text and "bad_2.png" in caplog.text and "2 skipped so far" in caplog.text


def test_strict_mode_names_the_file():
    safe = SafeDataset(_Flaky({1}), EvalTransform(), strict=True)
    with pytest.raises(SampleReadError, match=r"/data/bad_1.png.*strict"):
        safe[1]
    with pytest.raises(RuntimeError, match="in a row"):
        SafeDataset(_Flaky(set(range(6))), EvalTransform(), max_skips=3)[0]


def test_corrupt_file_in_a_real_folder_is_skipped_in_training(tmp_path, caplog):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 50 * i, np.uint8)).save(tmp_path / "rgb" / f"{i}.png")
        np.save(tmp_path / "depth" / f"{i}.npy", np.full((10, 12), 2.0, np.float32))
    (tmp_path / "rgb" / "1.png").write_bytes(b"garbage")
    dm = DepthDataModule(labeled=[PairedFolder(tmp_path)], crop_size=8, batch_size=3)
    with caplog.at_level(logging.WARNING, logger="da_toolkit.data"):
        b = _first(dm.train_dataloader())
    assert b["labeled"]["image"].shape[0] == 3 and "1.png" in caplog.text
    strict = DepthDataModule(labeled=[PairedFolder(tmp_path)], crop_size=8, batch_size=3, strict=True)
    with pytest.raises(SampleReadError, match="1.png"):
        _first(strict.train_dataloader())


class _Recorder(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.seen: list[tuple[int, int]] = []
        self.val_sizes: list[tuple[int, int]] = []

    def training_step(self, batch, idx):
        self.seen.append((batch["labeled"]["image"].shape[0], batch["unlabeled"]["image"].shape[0]))
        return (self.w - batch["labeled"]["depth"].mean()) ** 2

    def validation_step(self, batch, idx):
        self.val_sizes.append(tuple(batch["image"].shape[-2:]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_lightning_fit_with_workers():
    dm = _dm(num_workers=2, persistent_workers=True)
    model = _Recorder()
    trainer = L.Trainer(
        max_epochs=1, limit_train_batches=3, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert model.seen == [(2, 4)] * 3
    assert sorted(set(model.val_sizes)) == [(18, 14), (20, 30)]


def test_built_from_yaml_with_jsonargparse():
    import yaml
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--data", type=DepthDataModule)
    cfg = yaml.safe_load(
        """
data:
  class_path: da_toolkit.data.DepthDataModule
  init_args:
    labeled:
      - class_path: SyntheticScenes
        init_args: {length: 4, size: [16, 16], domain: {scene: room}}
    unlabeled:
      - class_path: da_toolkit.data.sources.SyntheticScenes
        init_args: {length: 8, seed: 3, labeled: false}
    crop_size: 14
    batch_size: 2
"""
    )
    dm = parser.instantiate(parser.parse_object(cfg)).data
    assert isinstance(dm, DepthDataModule) and dm.labeled[0].domain.scene == "room"
    b = _first(dm.train_dataloader())
    assert b["labeled"]["image"].shape == (2, 3, 14, 14) and b["unlabeled"]["image"].shape == (4, 3, 14, 14)


def test_strict_error_crosses_worker_processes(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(2):
        (tmp_path / "rgb" / f"{i}.png").write_bytes(b"")
        np.save(tmp_path / "depth" / f"{i}.npy", np.ones((4, 4), np.float32))
    dm = DepthDataModule(val=[PairedFolder(tmp_path)], strict=True, num_workers=1)
    with pytest.raises(SampleReadError, match=r"0\.png.*empty"):
        next(iter(dm.val_dataloader()))


def test_running_count_is_summed_over_loader_workers():
    """Each worker counts in its own shared slot; the main process sees the total."""
    safe = SafeDataset(_Flaky({1, 2}), EvalTransform(), stream="labeled")
    loader = torch.utils.data.DataLoader(safe, batch_size=1, num_workers=2, collate_fn=lambda b: b[0])
    ids = [item["meta"]["id"] for item in loader]
    # index 1 skips 1 and 2, index 2 skips 2: three skips in all, whichever worker met them
    assert ids.count("seed0/00000003") == 3
    assert safe.skipped == 3
    assert DepthDataModule().skipped_samples == {}


def test_skip_warning_reaches_stderr_without_logging_setup(tmp_path):
    """A user who configured no logging still sees the warning with the running count."""
    import subprocess
    import sys
    import textwrap

    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(3):
        Image.fromarray(np.full((10, 12, 3), 50 * i, np.uint8)).save(tmp_path / "rgb" / f"{i}.png")
        np.save(tmp_path / "depth" / f"{i}.npy", np.full((10, 12), 2.0, np.float32))
    (tmp_path / "rgb" / "1.png").write_bytes(b"garbage")
    script = textwrap.dedent(
        f"""
        from da_toolkit.data.robust import SafeDataset
        from da_toolkit.data.sources import PairedFolder
        from da_toolkit.data.transforms import TrainTransform
        safe = SafeDataset(PairedFolder({str(tmp_path)!r}), TrainTransform(8, flip=True), stream="labeled")
        items = [safe[i] for i in range(len(safe))]
        print("skipped", safe.skipped)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "1.png" in out.stderr and "1 skipped so far" in out.stderr
    assert "skipped 1" in out.stdout


class _MetricsSink(L.pytorch.loggers.Logger):
    def __init__(self):
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self):
        return "sink"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.metrics.append(dict(metrics))


def test_fit_summary_warning_and_logged_skip_count(tmp_path, caplog):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    for i in range(4):
        Image.fromarray(np.full((10, 12, 3), 50 * i, np.uint8)).save(tmp_path / "rgb" / f"{i}.png")
        np.save(tmp_path / "depth" / f"{i}.npy", np.full((10, 12), 2.0, np.float32))
    (tmp_path / "rgb" / "2.png").write_bytes(b"garbage")
    dm = DepthDataModule(labeled=[PairedFolder(tmp_path)], crop_size=8, batch_size=4)
    sink = _MetricsSink()

    class _Labeled(_Recorder):
        def training_step(self, batch, idx):
            return (self.w - batch["labeled"]["depth"].mean()) ** 2

    trainer = L.Trainer(
        max_epochs=1, accelerator="cpu", devices=1, logger=sink, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
    )
    with caplog.at_level(logging.WARNING, logger="da_toolkit.data"):
        trainer.fit(_Labeled(), datamodule=dm)
    assert dm.skipped_samples == {"labeled": 1}
    assert "bad samples were skipped: labeled 1" in caplog.text
    assert {"data/skipped_labeled": 1.0} in sink.metrics


def test_subclass_hooks_used_by_the_student_data_module_are_stable():
    """``_train_stream`` is the override point of a stream and ``_loader`` builds loaders
    (``da_toolkit.data.student_datamodule.StudentDataModule`` relies on both)."""
    import inspect

    assert list(inspect.signature(DepthDataModule._train_stream).parameters) == [
        "self", "sources", "batch_size", "labeled",
    ]
    assert list(inspect.signature(DepthDataModule._loader).parameters) == [
        "self", "dataset", "batch_size", "shuffle", "collate", "drop_last",
    ]

    class _KeepDepth(DepthDataModule):
        def _train_stream(self, sources, batch_size, *, labeled):
            if labeled:
                return super()._train_stream(sources, batch_size, labeled=labeled)
            from da_toolkit.data.collate import collate_samples
            from da_toolkit.data.transforms import TrainTransform

            safe = SafeDataset(sources[0], TrainTransform(self.crop_size, flip=False), stream="pseudo")
            return self._loader(safe, batch_size, shuffle=True, collate=collate_samples, drop_last=True)

    dm = _KeepDepth(
        labeled=[SyntheticScenes(4, (16, 16), seed=0)], unlabeled=[SyntheticScenes(8, (16, 16), seed=1)],
        crop_size=14, batch_size=2,
    )
    b = _first(dm.train_dataloader())
    assert b["unlabeled"]["depth"].shape == (4, 14, 14)  # the override kept the labels
    assert set(dm.skipped_samples) == {"labeled", "pseudo"}


def test_only_labeled_crops_are_flipped():
    """Crop size = image size makes resize and crop identities: unlabeled crops are the originals,
    labeled crops are the originals or their mirror images (both occur)."""
    lab_src = SyntheticScenes(32, (14, 14), seed=5)
    unl_src = SyntheticScenes(32, (14, 14), seed=6, labeled=False)
    dm = DepthDataModule(labeled=[lab_src], unlabeled=[unl_src], crop_size=14, batch_size=16, unlabeled_ratio=2)
    torch.manual_seed(0)
    b = _first(dm.train_dataloader())

    def original(src, meta):
        index = int(meta["id"].split("/")[1])
        return torch.from_numpy(src[index]["image"]).permute(2, 0, 1).float() / 255.0

    for img, meta in zip(b["unlabeled"]["image"], b["unlabeled"]["meta"], strict=True):
        assert torch.equal(img, original(unl_src, meta))
    flipped = 0
    for img, depth, meta in zip(b["labeled"]["image"], b["labeled"]["depth"], b["labeled"]["meta"], strict=True):
        ref = original(lab_src, meta)
        ref_depth = torch.from_numpy(lab_src[int(meta["id"].split("/")[1])]["depth"])
        if torch.equal(img, ref):
            assert torch.equal(depth, ref_depth)
        else:
            assert torch.equal(img, ref.flip(-1)) and torch.equal(depth, ref_depth.flip(-1))
            flipped += 1
    assert 0 < flipped < 16
    no_flip = DepthDataModule(labeled=[lab_src], crop_size=14, batch_size=16, hflip=False)
    for img, meta in zip(*(lambda x: (x["image"], x["meta"]))(_first(no_flip.train_dataloader())["labeled"]), strict=True):
        assert torch.equal(img, original(lab_src, meta))
