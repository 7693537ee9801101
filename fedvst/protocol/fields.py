"""Colour fields on the wire (``fedvst.v1.ColourField``): both ends build and check them here."""

from __future__ import annotations

from fedvst.protocol import fedvst_pb2
from stylizer.field import FIELD_LAYOUT, FIELD_VERSION, ColourField, FieldError


def field_message(field: ColourField) -> fedvst_pb2.ColourField:
    """A field as its float16 message; the bytes are decoded and checked again before they leave
    (float16 overflow or a bad shape is caught here, by the sender, not by the phone)."""
    message = fedvst_pb2.ColourField(version=FIELD_VERSION, layout=FIELD_LAYOUT, shape=list(field.shape),
                                     data=field.to_bytes())
    read_field(message)
    return message


def read_field(message: fedvst_pb2.ColourField, what: str = "field") -> ColourField:
    """The ColourField in ``message``; any mismatch (version, layout, shape, length, NaN/Inf) is a FieldError."""
    if message.layout != FIELD_LAYOUT:
        raise FieldError(f"{what} has layout {message.layout[:40]!r}; this build reads {FIELD_LAYOUT!r}")
    try:
        return ColourField.from_bytes(message.data, tuple(message.shape), message.version)
    except FieldError as exc:
        raise FieldError(f"{what}: {exc}") from None
