"""Reading and writing model weights, with the format detected from the content.

Split by concern: :mod:`.safe` (raw files; the only ``torch.load``), :mod:`.formats` (format
detection, key maps, recorded model descriptions: :func:`read_weights`), :mod:`.load` (into
existing modules, strict, the file's head enforced), :mod:`.save` (self-describing safetensors,
Hugging Face folders). Building a model from a file is :func:`da_toolkit.models.load_model` /
:func:`da_toolkit.models.loading.model_from_weights`.
"""

from da_toolkit.models.weights.errors import (
    HeadMismatchError,
    UnsafeCheckpointError,
    WeightsError,
    WeightsMismatchError,
)
from da_toolkit.models.weights.formats import (
    ENCODER_CONTENT,
    FORMAT_NAME,
    MODEL_METADATA_KEY,
    LoadedWeights,
    read_weights,
)
from da_toolkit.models.weights.load import (
    load_encoder_weights,
    load_strict,
    load_weights,
)
from da_toolkit.models.weights.save import (
    save_backbone,
    save_encoder_weights,
    save_hf_folder,
    save_weights,
)

__all__ = [
    "ENCODER_CONTENT",
    "FORMAT_NAME",
    "MODEL_METADATA_KEY",
    "HeadMismatchError",
    "LoadedWeights",
    "UnsafeCheckpointError",
    "WeightsError",
    "WeightsMismatchError",
    "load_encoder_weights",
    "load_strict",
    "load_weights",
    "read_weights",
    "save_backbone",
    "save_encoder_weights",
    "save_hf_folder",
    "save_weights",
]
