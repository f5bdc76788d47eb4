import pytest
import torch

from da_toolkit.losses import SiLogLoss
from da_toolkit.models.description import build_model
from da_toolkit.tasks import MetricTask, TeacherTask
from tests.tasks.conftest import make_labeled, tiny_model


def test_metric_task_requires_a_metric_head() -> None:
    with pytest.raises(ValueError, match="metric model"):
        MetricTask(model=tiny_model())


def test_metric_task_silog_on_metres_and_encoder_from_relative(tmp_path) -> None:
    from da_toolkit.models.weights import save_weights

    relative = TeacherTask(model=tiny_model())
    path = tmp_path / "relative.safetensors"
    save_weights(relative.model, path)
    task = MetricTask(model=build_model({"preset": "tiny", "decoder": {"max_depth": 20.0}, "encoder_weights": str(path)}))
    assert task.output_kind == "metric"
    for k, v in relative.model.encoder.state_dict().items():  # encoder from the relative model
        assert torch.equal(v, task.model.encoder.state_dict()[k])
    batch = {"labeled": make_labeled(2)}
    total, terms, pred = task.compute_loss(batch)
    assert float(pred.min()) >= 0.0 and float(pred.max()) <= 20.0
    expected = SiLogLoss()(pred, batch["labeled"]["depth"], batch["labeled"]["valid"])
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="metric"):
        task.compute_loss({"labeled": make_labeled(2, kind="relative")})
