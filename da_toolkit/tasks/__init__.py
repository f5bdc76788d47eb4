"""Lightning training tasks wrapping the pure :class:`~da_toolkit.models.depth_model.DepthModel`.

* :class:`TeacherTask` - labeled data, affine-invariant (+ gradient matching) loss;
* :class:`StudentTask` - labeled + pseudo-labeled data, perturbations, CutMix, feature alignment;
* :class:`MetricTask` - metric fine-tuning with SiLog;
* :class:`PseudoLabelTask` - a frozen teacher labelling unlabeled images (predict loop), over
  :class:`UnlabeledImages`, written by :class:`PseudoLabelStoreWriter`;
* :class:`SemanticPretrainTask` - semantic pretraining of an encoder (no depth), a miniature DINOv2;
"""

from da_toolkit.tasks.base import DepthTask, NonFiniteLossError
from da_toolkit.tasks.metric import MetricTask
from da_toolkit.tasks.optim import OptimConfig
from da_toolkit.tasks.pretrain import SemanticPretrainTask
from da_toolkit.tasks.pseudo_label import PseudoLabelStoreWriter, PseudoLabelTask, UnlabeledImages
from da_toolkit.tasks.student import StudentTask
from da_toolkit.tasks.teacher import TeacherTask

__all__ = [
    "DepthTask",
    "MetricTask",
    "NonFiniteLossError",
    "OptimConfig",
    "PseudoLabelStoreWriter",
    "PseudoLabelTask",
    "SemanticPretrainTask",
    "StudentTask",
    "TeacherTask",
    "UnlabeledImages",
]
