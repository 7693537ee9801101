from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat

class UploadStyleRequest(_message.Message):
    __slots__ = ("image", "allow_collection")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    allow_collection: bool
    def __init__(self, image: _Optional[bytes] = ..., allow_collection: _Optional[bool] = ...) -> None: ...

class UploadStyleReply(_message.Message):
    __slots__ = ("handle", "width", "height")
    HANDLE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    handle: str
    width: int
    height: int
    def __init__(self, handle: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class KeyFrame(_message.Message):
    __slots__ = ("style_handle", "index", "image", "target_width", "target_height", "reply_format", "allow_collection", "reply_field", "strength")
    STYLE_HANDLE_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_WIDTH_FIELD_NUMBER: _ClassVar[int]
    TARGET_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ALLOW_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    style_handle: str
    index: int
    image: bytes
    target_width: int
    target_height: int
    reply_format: ImageFormat
    allow_collection: bool
    reply_field: bool
    strength: float
    def __init__(self, style_handle: _Optional[str] = ..., index: _Optional[int] = ..., image: _Optional[bytes] = ..., target_width: _Optional[int] = ..., target_height: _Optional[int] = ..., reply_format: _Optional[_Union[ImageFormat, str]] = ..., allow_collection: _Optional[bool] = ..., reply_field: _Optional[bool] = ..., strength: _Optional[float] = ...) -> None: ...

class ColourField(_message.Message):
    __slots__ = ("version", "layout", "shape", "data")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAYOUT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    version: int
    layout: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, version: _Optional[int] = ..., layout: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class StylizedFrame(_message.Message):
    __slots__ = ("index", "image", "format", "width", "height", "model_sha256", "field", "stored")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MODEL_SHA256_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    index: int
    image: bytes
    format: ImageFormat
    width: int
    height: int
    model_sha256: str
    field: ColourField
    stored: bool
    def __init__(self, index: _Optional[int] = ..., image: _Optional[bytes] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., model_sha256: _Optional[str] = ..., field: _Optional[_Union[ColourField, _Mapping]] = ..., stored: _Optional[bool] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("round",)
    ROUND_FIELD_NUMBER: _ClassVar[int]
    round: int
    def __init__(self, round: _Optional[int] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("round", "sha256", "metadata_json", "size")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    round: int
    sha256: str
    metadata_json: str
    size: int
    def __init__(self, round: _Optional[int] = ..., sha256: _Optional[str] = ..., metadata_json: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CloudStatus(_message.Message):
    __slots__ = ("rounds_done", "newest_checkpoint", "newest_sha256", "newest_saved_unix", "federation_json", "rounds_json", "best_round")
    ROUNDS_DONE_FIELD_NUMBER: _ClassVar[int]
    NEWEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    NEWEST_SHA256_FIELD_NUMBER: _ClassVar[int]
    NEWEST_SAVED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_JSON_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_JSON_FIELD_NUMBER: _ClassVar[int]
    BEST_ROUND_FIELD_NUMBER: _ClassVar[int]
    rounds_done: int
    newest_checkpoint: str
    newest_sha256: str
    newest_saved_unix: float
    federation_json: str
    rounds_json: str
    best_round: int
    def __init__(self, rounds_done: _Optional[int] = ..., newest_checkpoint: _Optional[str] = ..., newest_sha256: _Optional[str] = ..., newest_saved_unix: _Optional[float] = ..., federation_json: _Optional[str] = ..., rounds_json: _Optional[str] = ..., best_round: _Optional[int] = ...) -> None: ...
