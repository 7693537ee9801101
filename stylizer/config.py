"""Architecture configuration of the stylizer network (seeds/000 §3.3, seeds/002 Table II)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ENCODER_LAYERS = ("relu3_1", "relu4_1")
TAP_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the encoder's taps (Eq. 5's style taps), shallowest first
COLORIZATIONS = ("linear", "wct")
HEADS = ("affine", "image")
CONTENT_REFERENCES = ("prior", "content")
COLOUR_REFERENCES = ("style", "prior")
NEUTRAL_RESIDUALS = ("local", "global", "none")
LEGACY_HEAD = "image"  # what a checkpoint written before heads existed holds
# What a checkpoint written before these keys existed was trained and runs with.
LEGACY_VALUES = {"loss_layer": "", "content_reference": "prior", "flat_contrast": 0.0, "colour_guard": False,
                 "residual_offsets": True, "neutral_residual": "local", "smoothness_weight": 0.1, "glow_weight": 0.0,
                 "colour_weight": 100.0, "style_weight": 1.0, "style_from": "", "colour_reference": "style",
                 "normalize_decoder_inputs": False, "colour_projection": False,
                 "style_regions": 1, "residual_bound": 0.3}
MAX_MATRIX_DIM = 256
MAX_CHANNELS = 512
MAX_KERNEL = 15
MAX_GRID_DEPTH = 16
MAX_STYLE_REGIONS = 8
MAX_RESIDUAL_BOUND = 2.0
MAX_LOSS_WEIGHT = 1e9  # loss weights are in the raw units of the encoder's features (ImageNet VGG: ~1e4–1e5)


@dataclass(frozen=True)
class StylizerConfig:
    """Hyper-parameters that fix the shapes of every learned tensor.

    encoder_layer: deepest VGG-19 layer used ("relu3_1" or "relu4_1").
    decoder_width: width multiplier alpha in (0, 1] for the decoder's channels.
    colorization: "linear" (learned transform) or "wct" (closed form, no parameters).
    matrix_dim: side of the learned transform matrix of the linear colorization.
    upsample_channels: feature maps N_u produced by the meta-smoothing deconvolution.
    kernel_size: H_u = W_u = H_s = W_s of the meta-smoothing kernels (paper: 5).
    head: "affine" (a smooth field of 3×4 colour transforms rendered on the real frame,
        photorealistic by construction) or "image" (the paper's pixel decoder).
    grid_depth: luma bins of the affine field (1: a plain 2-D field; > 1: a bilateral grid).
    grid_stride: content pixels per field cell at the network's working size (affine head).
    smoothness_weight: weight of the edge-aware smoothness term on the field (affine head).
    glow_weight: weight of the glow term (``stylizer.losses.glow``: how far the field's change from
        one cell to the next moves the colour of smooth pixels; affine head).
    colour_weight: weight of the CIELAB mean/std term of the style distance (affine head).
    style_weight: Eq. 5's λ, the weight of the style term against the content term in the training
        loss (total = content + λ·style); the model carries it so that every trainer of it, the
        edges of a federation included, optimises the same loss.
    style_from: shallowest VGG tap of the training style term ("" for relu1_1: every tap, Eq. 5 as
        written); "relu3_1" leaves the shallow taps, whose means and deviations are mostly the
        colour the CIELAB term already matches, to that term. Held-out figures use every tap.
    style_regions: how many semantic regions the training style term compares separately (VGG
        feature clusters of the content, each matched with the most alike cluster of the style:
        ``stylizer.feature_regions``); 1 is Eq. 5's global term. Held-out figures use the global term.
    loss_layer: deepest VGG tap of the training loss (Eq. 5's D), "" for ``encoder_layer``; the
        encoder is built down to the deeper of the two, the network reads ``encoder_layer``.
    colour_reference: what the affine head's CIELAB term compares the output's CIELAB means and
        deviations with: "style" (the style's) or "prior" (the closed-form prior's output on the same
        crop: the residual learns to move local contrast and texture while keeping the colour of the
        transfer it starts from, which is what the colour guard asks of it at inference).
    content_reference: what the affine head's content term compares the output with: "prior"
        (the content as the closed-form prior recolours it) or "content" (Eq. 5 as written).
    flat_contrast: local luma contrast (standard deviation, [0, 1] units) below which the
        affine head's learned residual fades out, so flat and dark regions keep the prior's
        single transform (0: no fading; see ``stylizer.flat_gate``).
    residual_offsets: whether the learned residual may change a cell's offsets b, not only its 3×3
        gains A. Without offsets the learned part is A_res(x)·I(x): it cannot paint anything on black
        pixels, not even in a cell that straddles a black region and a textured one, where the flat
        gate lets the residual through.
    neutral_residual: what the learned residual may do to neutral colours (greys, white, black: the
        colours g·(1, 1, 1)), which a gain-only residual moves by g·A_res(x)·(1, 1, 1), its gains' row
        sums: "local" (each cell its own: a white cloud may turn lime in one cell and magenta in the
        next), "global" (one row-sum vector for the whole frame, the gate-weighted mean of the cells':
        the residual may still shift every grey of the frame alike, but no surface of one neutral
        colour takes two casts) or "none" (row sums 0: greys go exactly where the prior sends them). In
        every mode the rest of the gains, which act on a pixel's chroma (its departure from its own
        grey), stay local. "global" and "none" need residual_offsets false (an offset moves black).
    normalize_decoder_inputs: the affine head's decoder divides its two inputs by their own RMS per
        item (``stylizer.affine_decoder``): the raw VGG features' scale otherwise saturates the
        residual's bound and stops every gradient.
    colour_guard: at inference the affine head keeps only as much of its residual as leaves the
        output's CIELAB mean and deviation no further from the style's than the prior's output
        (``StylizerNet._guard_colour``); training sees the whole residual.
    colour_projection: the affine head maps its output's RGB mean and covariance (measured on the
        reference copy of the content) back onto those of the prior's output, with one global affine
        map composed into every cell (``StylizerNet._project_colour``), in training and at inference:
        the learned part can move local contrast and texture but not the frame's colour distribution,
        which stays the closed-form transfer's (issue 32's "hard projection").
    residual_bound: each coefficient of the affine head's residual is squashed into (−b, b) by
        b·tanh(x / b) before the gate, so the field stays near the prior; b in (0, 2].
    """

    encoder_layer: str = "relu3_1"
    decoder_width: float = 1.0
    colorization: str = "linear"
    matrix_dim: int = 32
    upsample_channels: int = 8
    kernel_size: int = 5
    head: str = "affine"
    grid_depth: int = 1
    grid_stride: int = 8
    smoothness_weight: float = 0.0
    glow_weight: float = 0.0
    colour_weight: float = 3e7
    style_weight: float = 1.0
    style_from: str = ""
    style_regions: int = 1
    loss_layer: str = ""
    content_reference: str = "content"
    colour_reference: str = "style"
    flat_contrast: float = 0.03
    colour_guard: bool = True
    residual_offsets: bool = False
    neutral_residual: str = "local"
    normalize_decoder_inputs: bool = True
    colour_projection: bool = False
    residual_bound: float = 0.3

    def __post_init__(self) -> None:
        for name in ("matrix_dim", "upsample_channels", "kernel_size", "grid_depth", "grid_stride", "style_regions"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.matrix_dim > MAX_MATRIX_DIM or self.upsample_channels > MAX_CHANNELS or self.kernel_size > MAX_KERNEL:
            raise ValueError(f"matrix_dim ≤ {MAX_MATRIX_DIM}, upsample_channels ≤ {MAX_CHANNELS} and kernel_size ≤ "
                             f"{MAX_KERNEL} are the limits; got {self.matrix_dim}, {self.upsample_channels}, "
                             f"{self.kernel_size}")
        if not 1 <= self.grid_depth <= MAX_GRID_DEPTH:
            raise ValueError(f"grid_depth must be in 1..{MAX_GRID_DEPTH}, got {self.grid_depth}")
        if not 1 <= self.style_regions <= MAX_STYLE_REGIONS:
            raise ValueError(f"style_regions must be in 1..{MAX_STYLE_REGIONS}, got {self.style_regions}")
        if self.grid_stride not in (4, 8, 16, 32):
            raise ValueError(f"grid_stride must be 4, 8, 16 or 32, got {self.grid_stride}")
        for name in ("smoothness_weight", "glow_weight", "colour_weight", "style_weight"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < MAX_LOSS_WEIGHT):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
        if self.encoder_layer not in ENCODER_LAYERS:
            raise ValueError(f"encoder_layer must be one of {ENCODER_LAYERS}, got {self.encoder_layer!r}")
        if self.loss_layer not in ("", *ENCODER_LAYERS):
            raise ValueError(f"loss_layer must be one of {ENCODER_LAYERS} or empty, got {self.loss_layer!r}")
        if self.style_from not in ("", *TAP_NAMES) or (
                self.style_from and TAP_NAMES.index(self.style_from) > TAP_NAMES.index(self.loss_tap)):
            raise ValueError(f"style_from must be empty or a tap of {TAP_NAMES} no deeper than {self.loss_tap}, "
                             f"got {self.style_from!r}")
        if self.colour_reference not in COLOUR_REFERENCES:
            raise ValueError(f"colour_reference must be one of {COLOUR_REFERENCES}, got {self.colour_reference!r}")
        if self.content_reference not in CONTENT_REFERENCES:
            raise ValueError(f"content_reference must be one of {CONTENT_REFERENCES}, got {self.content_reference!r}")
        for name in ("colour_guard", "residual_offsets", "normalize_decoder_inputs", "colour_projection"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.neutral_residual not in NEUTRAL_RESIDUALS:
            raise ValueError(f"neutral_residual must be one of {NEUTRAL_RESIDUALS}, got {self.neutral_residual!r}")
        if self.neutral_residual != "local" and self.residual_offsets:
            raise ValueError(f"neutral_residual {self.neutral_residual!r} bounds what the residual does to greys, "
                             "white and black, which residual offsets would move anyway: set residual_offsets false")
        if not (isinstance(self.flat_contrast, (int, float)) and 0.0 <= self.flat_contrast <= 1.0):
            raise ValueError(f"flat_contrast must be a number in [0, 1], got {self.flat_contrast!r}")
        if not (isinstance(self.residual_bound, (int, float)) and not isinstance(self.residual_bound, bool)
                and 0.0 < self.residual_bound <= MAX_RESIDUAL_BOUND):
            raise ValueError(f"residual_bound must be a number in (0, {MAX_RESIDUAL_BOUND:g}], "
                             f"got {self.residual_bound!r}")
        if not 0.0 < self.decoder_width <= 1.0:
            raise ValueError(f"decoder_width must be in (0, 1], got {self.decoder_width}")
        if self.colorization not in COLORIZATIONS:
            raise ValueError(f"colorization must be one of {COLORIZATIONS}, got {self.colorization!r}")
        if self.matrix_dim < 1 or self.upsample_channels < 3:
            raise ValueError("matrix_dim must be >= 1 and upsample_channels >= 3")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size}")

    @property
    def loss_tap(self) -> str:
        """The deepest tap of the training loss."""
        return self.loss_layer or self.encoder_layer

    @property
    def encoder_depth(self) -> str:
        """How deep the frozen encoder is built: the deeper of ``encoder_layer`` and ``loss_tap``."""
        return max(self.encoder_layer, self.loss_tap, key=ENCODER_LAYERS.index)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StylizerConfig:
        """Inverse of to_dict; unknown keys are an error (a newer format we cannot honour).

        A config without ``head`` was written before heads existed: it is the paper's image head; one
        without a key of ``LEGACY_VALUES`` gets the value every model had before that key existed.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown stylizer config keys: {sorted(unknown)}")
        values = dict(values)
        values.setdefault("head", LEGACY_HEAD)
        for key, legacy in LEGACY_VALUES.items():
            values.setdefault(key, legacy)
        return cls(**values)
