"""The MVStylizer DNN (seeds/000 §3.3): VGG encoder, colorization, decoder, meta-smoothing."""

from stylizer.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from stylizer.config import StylizerConfig
from stylizer.factory import build_model, builtin_checkpoint_path, load_model, model_from_checkpoint, save_model
from stylizer.images import ImageError, load_image
from stylizer.inference import Stylizer
from stylizer.losses import LossValues
from stylizer.model import StylizerNet
from stylizer.training import PairSampler, TrainBatch, evaluate, make_optimizer, train_step

__all__ = [
    "Checkpoint", "CheckpointError", "ImageError", "LossValues", "PairSampler", "Stylizer", "StylizerConfig",
    "StylizerNet", "TrainBatch", "build_model", "builtin_checkpoint_path", "evaluate", "load_checkpoint",
    "load_image", "load_model", "make_optimizer", "model_from_checkpoint", "save_checkpoint", "save_model",
    "train_step",
]
