"""Safetensors checkpoints as Hugging Face lays them out: one `model.safetensors`, or shards
`model-0000i-of-0000n.safetensors` named by a `model.safetensors.index.json` weight map.

Reading validates every header first with `safetensors.safe_open` (a truncated or padded file, a
weight map naming a file or key that is not there) and then hands out one tensor at a time, read
with plain file reads at the offsets of the validated header into 64-byte aligned buffers, which
`jax.device_put` adopts without copying: a large checkpoint never sits in memory twice, and none of
it stays mapped in this process. Writing streams: the header is computed from the shapes and dtypes, then each tensor
is produced, written and dropped in turn.

Every problem raises `NeurojaxError` naming the file and, where there is one, the key.
"""
import dataclasses
import json
import os
import struct
import sys
from typing import Callable, Iterable, Optional

import ml_dtypes
import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.files import read_json_object

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
HEADER_ALIGN = 8  # the header is padded with spaces so tensor data starts 8-byte aligned
ALIGNMENT = 64  # tensors are read into buffers aligned for XLA, which then adopts them without a copy

# safetensors dtype codes <-> NumPy dtypes (bfloat16 from ml_dtypes, which JAX ships).
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype(np.float64), "F32": np.dtype(np.float32), "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16), "I64": np.dtype(np.int64), "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16), "I8": np.dtype(np.int8), "U8": np.dtype(np.uint8), "BOOL": np.dtype(np.bool_),
}
CODES: dict[np.dtype, str] = {v: k for k, v in DTYPES.items()}


def dtype_code(dtype) -> str:
    """The safetensors code (`"BF16"`, `"F32"`, ...) of a NumPy dtype."""
    dtype = np.dtype(dtype)
    if dtype not in CODES:
        raise NeurojaxError(f"dtype {dtype} has no safetensors code here; known: {sorted(CODES.values())}")
    return CODES[dtype]


def shard_name(i: int, n: int) -> str:
    """Hugging Face's shard file name, `model-00001-of-00003.safetensors` (1-based `i`)."""
    return f"model-{i:05d}-of-{n:05d}.safetensors"


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    key: str
    file: str  # file name inside the checkpoint directory
    dtype: str  # safetensors code
    shape: tuple[int, ...]
    offset: int = -1  # absolute byte offset of the data in `file` (-1: not read from a file)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * DTYPES[self.dtype].itemsize if self.dtype in DTYPES else 0


@dataclasses.dataclass
class Layout:
    """What a checkpoint directory holds: tensors (key -> info, in file order), per-file metadata,
    and for a sharded checkpoint the index's own `metadata` (None for a single file)."""

    directory: str
    tensors: dict[str, TensorInfo]
    file_metadata: dict[str, dict[str, str]]
    index_metadata: Optional[dict] = None

    @property
    def files(self) -> list[str]:
        return list(self.file_metadata)

    @property
    def sharded(self) -> bool:
        return self.index_metadata is not None

    @property
    def weight_map(self) -> dict[str, str]:
        return {k: t.file for k, t in self.tensors.items()}

    @property
    def total_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    def path(self, key: str) -> str:
        return os.path.join(self.directory, self.tensors[key].file)


def _safe_open(path: str):
    try:
        from safetensors import safe_open
    except ImportError as e:  # pragma: no cover - install_requires has it
        raise NeurojaxError("reading safetensors needs the `safetensors` package: pip install safetensors") from e
    return safe_open(path, framework="numpy")


def _data_offsets(path: str) -> dict[str, int]:
    """Absolute byte offset of every tensor's data (header length + JSON `data_offsets` start)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    return {k: 8 + length + int(v["data_offsets"][0]) for k, v in header.items() if k != "__metadata__"}


def read_header(path: str) -> tuple[dict[str, TensorInfo], dict[str, str]]:
    """Keys, dtypes, shapes and data offsets of one file (in offset order) and its metadata, validated
    by safetensors itself: a truncated file, trailing bytes or a broken header is an error naming the file."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise NeurojaxError(f"checkpoint file {path!r} does not exist")
    try:
        with _safe_open(path) as f:
            keys = f.offset_keys() if hasattr(f, "offset_keys") else f.keys()
            shapes = {k: (str(f.get_slice(k).get_dtype()), tuple(int(d) for d in f.get_slice(k).get_shape()))
                      for k in keys}
            metadata = dict(f.metadata() or {})
        offsets = _data_offsets(path)  # the header safetensors has just validated
    except NeurojaxError:
        raise
    except Exception as e:  # SafetensorError, OSError: the file is not a complete safetensors file
        raise NeurojaxError(f"{path!r} is not a complete safetensors file ({type(e).__name__}: {e}); "
                            f"re-download or re-export it") from e
    infos = {k: TensorInfo(k, name, dtype, shape, offsets[k]) for k, (dtype, shape) in shapes.items()}
    return infos, metadata


def read_layout(directory: str) -> Layout:
    """Validate the safetensors checkpoint in `directory` (headers only; no tensor data is read).

    `model.safetensors` is used when present (as transformers does), else the index and its shards.
    """
    single, index = os.path.join(directory, SINGLE_FILE), os.path.join(directory, INDEX_FILE)
    if os.path.isfile(single):
        tensors, metadata = read_header(single)
        return Layout(directory, tensors, {SINGLE_FILE: metadata})
    if not os.path.isfile(index):
        present = sorted(os.listdir(directory)) if os.path.isdir(directory) else None
        hint = " (PyTorch .bin weights must be converted to safetensors first)" if present and any(
            p.endswith(".bin") for p in present) else ""
        raise NeurojaxError(f"{directory!r} has neither {SINGLE_FILE} nor {INDEX_FILE}{hint}")
    doc = read_json_object(index)
    weight_map = doc.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise NeurojaxError(f"{index!r} has no 'weight_map' object mapping tensor names to shard files")
    for key, file in weight_map.items():
        if not isinstance(file, str) or os.path.basename(file) != file:
            raise NeurojaxError(f"{index!r} maps {key!r} to {file!r}, which is not a file name in {directory!r}")
    files = sorted(set(weight_map.values()))
    tensors: dict[str, TensorInfo] = {}
    file_metadata = {}
    for file in files:
        infos, metadata = read_header(os.path.join(directory, file))
        file_metadata[file] = metadata
        for key, info in infos.items():
            if key not in weight_map:
                raise NeurojaxError(f"{os.path.join(directory, file)!r} holds tensor {key!r}, which {INDEX_FILE} "
                                    f"does not list")
            if weight_map[key] != file:
                raise NeurojaxError(f"tensor {key!r} is in {file!r} but {INDEX_FILE} maps it to {weight_map[key]!r}")
            tensors[key] = info
    for key, file in weight_map.items():
        if key not in tensors:
            raise NeurojaxError(f"{INDEX_FILE} maps {key!r} to {file!r}, but "
                                f"{os.path.join(directory, file)!r} has no such tensor")
    metadata = doc.get("metadata", {})
    return Layout(directory, tensors, file_metadata, metadata if isinstance(metadata, dict) else {})


def aligned_empty(nbytes: int, alignment: int = ALIGNMENT) -> np.ndarray:
    """An uninitialised uint8 buffer whose data starts at a multiple of `alignment` bytes."""
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes]


def read_tensor(layout: Layout, key: str) -> np.ndarray:
    """One tensor as a NumPy array in its stored dtype, read straight from the file into a 64-byte
    aligned buffer (so `jax.device_put` can adopt it without a copy); nothing of the file stays mapped."""
    info = layout.tensors[key]
    path = layout.path(key)
    if info.dtype not in DTYPES:
        raise NeurojaxError(f"tensor {key!r} in {path!r} has dtype {info.dtype}, which cannot be read here; "
                            f"known: {sorted(DTYPES)}")
    buffer = aligned_empty(info.nbytes)
    view, done = memoryview(buffer), 0
    try:
        with open(path, "rb", buffering=0) as f:
            f.seek(info.offset)
            while done < info.nbytes:
                n = f.readinto(view[done:])
                if not n:
                    break
                done += n
    except OSError as e:
        raise NeurojaxError(f"cannot read tensor {key!r} from {path!r} ({e})") from e
    if done != info.nbytes:
        raise NeurojaxError(f"{path!r} ended inside tensor {key!r} ({done} of {info.nbytes} bytes); the file was "
                            f"truncated after it was opened")
    array = buffer.view(DTYPES[info.dtype]).reshape(info.shape)
    if sys.byteorder == "big":  # the format is little-endian
        array.byteswap(inplace=True)
    return array


def _little_endian(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, order="C")  # (ascontiguousarray would make a scalar 1-d)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(array.dtype.newbyteorder("<"))
    return array


def write_file(path: str, specs: Iterable[TensorInfo], produce: Callable[[str], np.ndarray],
               metadata: Optional[dict[str, str]] = None) -> None:
    """Write one safetensors file holding `specs` (in that order), calling `produce(key)` for each
    tensor's data just before it is written; each array must match its spec's dtype and shape."""
    specs = list(specs)
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for s in specs:
        if s.dtype not in DTYPES:
            raise NeurojaxError(f"cannot write tensor {s.key!r} with dtype {s.dtype}; known: {sorted(DTYPES)}")
        header[s.key] = {"dtype": s.dtype, "shape": list(s.shape), "data_offsets": [offset, offset + s.nbytes]}
        offset += s.nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(len(text) + 8) % HEADER_ALIGN)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for s in specs:
            array = _little_endian(produce(s.key))
            if array.dtype != DTYPES[s.dtype] or tuple(array.shape) != s.shape:
                raise NeurojaxError(f"tensor {s.key!r} for {path!r} is {array.dtype}{list(array.shape)}, expected "
                                    f"{s.dtype}{list(s.shape)}")
            f.write(array.reshape(-1).view(np.uint8).data)
            del array
        f.flush()
        os.fsync(f.fileno())


def plan_shards(specs: list[TensorInfo], max_shard_bytes: Optional[int]) -> dict[str, list[TensorInfo]]:
    """File name -> tensors: one `model.safetensors` when `max_shard_bytes` is None or everything fits,
    else consecutive shards of at most `max_shard_bytes` (a larger tensor gets a shard to itself)."""
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise NeurojaxError(f"the maximum shard size must be positive, got {max_shard_bytes} bytes")
    total = sum(s.nbytes for s in specs)
    if max_shard_bytes is None or total <= max_shard_bytes:
        return {SINGLE_FILE: list(specs)}
    groups: list[list[TensorInfo]] = [[]]
    size = 0
    for s in specs:
        if groups[-1] and size + s.nbytes > max_shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(s)
        size += s.nbytes
    return {shard_name(i + 1, len(groups)): g for i, g in enumerate(groups)}


def write_checkpoint(directory: str, files: dict[str, list[TensorInfo]], produce: Callable[[str], np.ndarray],
                     metadata: Optional[dict[str, str]] = None, index_metadata: Optional[dict] = None) -> None:
    """Write `files` (file name -> tensors) into the existing `directory`, plus the index when there is more
    than one file or a name other than `model.safetensors`; the index's `total_size` is recomputed."""
    for name, specs in files.items():
        write_file(os.path.join(directory, name), specs, produce, metadata)
    if list(files) != [SINGLE_FILE]:
        meta = dict(index_metadata or {})
        meta["total_size"] = sum(s.nbytes for specs in files.values() for s in specs)
        doc = {"metadata": meta, "weight_map": {s.key: name for name, specs in files.items() for s in specs}}
        with open(os.path.join(directory, INDEX_FILE), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
