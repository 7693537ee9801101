"""Field mode: colour fields on the wire and warped between key frames, rendered on each frame's pixels."""

import numpy as np
import pytest
import torch

from fedvst.protocol import fedvst_pb2
from fedvst.protocol.fields import field_message, read_field
from fedvst.stage_clock import StageClock
from fedvst.video.field_warp import FieldInterpolator, warp_field
from fedvst.video.flow import FIELD_FLOW_PRESET, FlowEstimator, to_analysis
from stylizer import ColourField, FieldError, Stylizer, StylizerConfig, build_model
from stylizer.field import identity_field
from stylizer.render import render_field
from tests.fedvst.clips import camera_clip


def test_a_field_message_round_trips_and_malformed_ones_are_refused_in_one_line():
    rng = np.random.default_rng(0)
    field = ColourField(identity_field((9, 16)).coefficients + rng.normal(0, 0.1, (9, 16, 1, 12)).astype(np.float32))
    message = field_message(field)
    assert read_field(message).to_bytes() == field.quantized().to_bytes()

    def broken(**changes) -> fedvst_pb2.ColourField:
        copy = fedvst_pb2.ColourField()
        copy.CopyFrom(message)
        for key, value in changes.items():
            if key == "shape":
                del copy.shape[:]
                copy.shape.extend(value)
            else:
                setattr(copy, key, value)
        return copy

    nan = np.frombuffer(message.data, "<f2").copy()
    nan[5] = np.nan
    inf = nan.copy()
    inf[5] = np.inf
    cases = {
        "needs": broken(data=message.data[:-2]),
        "NaN": broken(data=nan.tobytes()),
        "NaN or infinite": broken(data=inf.tobytes()),
        "too large": broken(shape=[100000, 16, 1, 12]),
        "shape must be": broken(shape=[9, 16, 1, 11]),
        "version": broken(version=7),
        "layout": broken(layout="planar"),
    }
    for words, message_case in cases.items():
        with pytest.raises(FieldError, match=words) as caught:
            read_field(message_case)
        assert "\n" not in str(caught.value)
    overflow = field.coefficients.copy()
    overflow[0, 0, 0, 0] = 70000.0  # would be Inf in float16: the edge refuses to send it
    with pytest.raises(FieldError, match="magnitude"):
        ColourField(overflow)


def test_warping_a_field_follows_the_flow():
    coefficients = np.zeros((6, 8, 1, 12), np.float32)
    coefficients[..., 3] = np.arange(8, dtype=np.float32)[None, :, None]  # offset b0 grows to the right
    flow = np.zeros((60, 80, 2), np.float32)
    flow[..., 0] = 20.0  # every pixel's match in the key is 20 px (2 cells) to the right
    warped = warp_field(coefficients, flow)
    assert np.allclose(warped[:, :6, 0, 3], coefficients[:, 2:, 0, 3])
    assert np.allclose(warped[:, 6:, 0, 3], 7.0)  # beyond the key's edge: its border


def test_a_pan_over_a_real_photo_is_interpolated_on_the_frames_own_pixels(photos, encoder_weights):
    torch.manual_seed(0)
    model = build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16), encoder_weights)
    with torch.no_grad():  # a field that varies over the frame, as a trained one does
        model.decoder.head.weight.normal_(0, 0.02)
    stylizer = Stylizer(model, device="cpu", precision="fp32")
    style = stylizer.add_style(photos["coffee"])
    frames = camera_clip(photos["astronaut"], 6, (4.0, 1.0), (144, 240))
    size = frames[0].shape[:2]
    fields = [stylizer.colour_field(f, style, size).coefficients for f in frames]
    grays = [to_analysis(f, size) for f in frames]
    interpolator = FieldInterpolator()
    clock = StageClock()
    errors = {"true flow": [], "no flow": []}
    for index in (1, 2, 3, 4):
        reference = render_field(frames[index], fields[index])  # frame-by-frame stylization of frame i
        for name, scale in (("true flow", 1.0), ("no flow", 0.0)):
            to_a = np.empty((*size, 2), np.float32)  # frame i(x) = key a(x + i·step)
            to_a[..., 0], to_a[..., 1] = 4.0 * index * scale, 1.0 * index * scale
            blended = interpolator.two_sided(grays[index], index / 5, fields[0], grays[0], to_a, fields[5], grays[5],
                                             clock=clock)
            out = render_field(frames[index], blended)
            errors[name].append(np.abs(out.astype(float) - reference).mean())
            assert np.abs(out.astype(float) - frames[index]).mean() > 10  # stylized, not the input
    assert max(errors["true flow"]) < 1.0, errors
    assert np.mean(errors["true flow"]) < 0.7 * np.mean(errors["no flow"]), errors  # the warp is what helps
    assert list(clock.seconds) == ["shrink", "flow_to_b", "visibility", "warp_blend"]  # every stage timed, in order
    assert all(seconds > 0 for seconds in clock.seconds.values()), clock.seconds


def test_field_mode_flow_moves_each_cell_to_where_the_camera_went(photos):
    """The cheaper DIS preset field mode uses, averaged per cell as ``warp_field`` does, follows a
    real photo's pan to a small fraction of a cell (the flow's only use there)."""
    size, grid = (270, 480), (9, 16)
    step = (5.0, 2.0)  # px per frame: frame t shows the photo moved by t·step
    frames = camera_clip(photos["astronaut"], 4, step, size)
    grays = [to_analysis(f, size) for f in frames]
    coordinates = np.zeros((*grid, 1, 12), np.float32)
    coordinates[..., 0, 0] = np.arange(grid[1], dtype=np.float32)[None, :]
    coordinates[..., 0, 1] = np.arange(grid[0], dtype=np.float32)[:, None]
    flow = FlowEstimator(FIELD_FLOW_PRESET)
    for t in (1, 3):
        reached = warp_field(coordinates, flow(grays[t], grays[0]))  # frame t(x) = frame 0(x + t·step)
        moved_x = reached[1:-1, 1:-1, 0, 0] - coordinates[1:-1, 1:-1, 0, 0]  # inner cells: no border clamp
        moved_y = reached[1:-1, 1:-1, 0, 1] - coordinates[1:-1, 1:-1, 0, 1]
        true_x, true_y = t * step[0] * grid[1] / size[1], t * step[1] * grid[0] / size[0]
        assert np.abs(moved_x - true_x).mean() < 0.02 and np.abs(moved_x - true_x).max() < 0.15, (t, moved_x)
        assert np.abs(moved_y - true_y).mean() < 0.02 and np.abs(moved_y - true_y).max() < 0.15, (t, moved_y)
