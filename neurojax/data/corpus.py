"""Training corpora as flat token arrays: the Python stdlib by default, or user files.

The default corpus is the interpreter's own standard-library `.py` sources, so
training needs no download; the split is deterministic so runs are comparable.
"""
import dataclasses
import hashlib
import os
import sysconfig
import zlib
from pathlib import Path

import numpy as np

from neurojax.errors import NeurojaxError
from neurojax.data.tokenizer import ByteTokenizer

STDLIB_NAME = "python-stdlib"
_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """Train/validation token streams (uint16, read-only), where they came from and a fingerprint."""

    train: np.ndarray
    validation: np.ndarray
    name: str
    num_files: tuple[int, int]  # (files in train, files in validation)
    fingerprint: str  # first 16 hex chars of sha256 over both token arrays

    def __eq__(self, other):
        if not isinstance(other, Corpus):
            return NotImplemented
        return (self.name == other.name and self.num_files == other.num_files
                and self.fingerprint == other.fingerprint
                and np.array_equal(self.train, other.train)
                and np.array_equal(self.validation, other.validation))

    def __hash__(self):
        return hash((self.name, self.fingerprint))


def fingerprint(train: np.ndarray, validation: np.ndarray) -> str:
    """First 16 hex chars of sha256 over both uint16 token arrays (lengths included)."""
    h = hashlib.sha256()
    for arr in (train, validation):
        data = np.ascontiguousarray(arr, dtype="<u2")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data.tobytes())
    return h.hexdigest()[:16]


def stdlib_files(root: str | None = None) -> list[str]:
    """Relative POSIX paths of the stdlib `.py` files, sorted, skipping site/dist-packages and caches."""
    root = Path(root if root is not None else sysconfig.get_paths()["stdlib"])
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS]
        for name in filenames:
            full = Path(dirpath, name)
            if name.endswith(".py") and full.is_file():
                found.append(full.relative_to(root).as_posix())
    return sorted(found)


def is_validation_file(relpath: str, validation_fraction: float) -> bool:
    """Whether the file at `relpath` belongs to the validation split (a crc32 hash rule)."""
    return zlib.crc32(relpath.encode()) % 1000 < 1000 * validation_fraction


def _encode_documents(docs: list[bytes]) -> np.ndarray:
    """Concatenate documents as uint16 `[sum(len + 1)]`: each one's bytes followed by EOS."""
    out = np.empty(sum(len(d) + 1 for d in docs), dtype=np.uint16)
    pos = 0
    for doc in docs:
        out[pos:pos + len(doc)] = np.frombuffer(doc, dtype=np.uint8)
        out[pos + len(doc)] = ByteTokenizer.EOS
        pos += len(doc) + 1
    return out


def _user_files(data: str) -> list[tuple[str, Path]]:
    """(split key, path) for each file named by the comma-separated `data`, in order, deduplicated."""
    entries = [e.strip() for e in data.split(",") if e.strip()]
    if not entries:
        raise NeurojaxError(f"data {data!r} names no paths; give comma-separated files or directories")
    files, seen = [], set()
    for entry in entries:
        path = Path(os.path.expanduser(entry))
        if not path.exists():
            raise NeurojaxError(f"data path {entry!r} does not exist")
        if path.is_dir():
            found = []
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                for name in filenames:
                    full = Path(dirpath, name)
                    if not name.startswith(".") and full.is_file() and os.access(full, os.R_OK):
                        found.append((full.relative_to(path).as_posix(), full))
            candidates = sorted(found)
        elif path.is_file():
            candidates = [(path.name, path)]
        else:
            raise NeurojaxError(f"data path {entry!r} is neither a regular file nor a directory")
        for key, full in candidates:
            if full.resolve() not in seen:
                seen.add(full.resolve())
                files.append((key, full))
    if not files:
        raise NeurojaxError(f"no readable files found in data paths {entries}")
    return files


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise NeurojaxError(f"cannot read data file {str(path)!r}: {e.strerror or e}") from None


def _tail_split(docs: list[bytes], fraction: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Split the encoded stream so validation is its last `fraction` of content tokens (plus EOS).

    Also returns how many documents reach into each side.
    """
    tokens = _encode_documents(docs)
    content = len(tokens) - 1
    cut = content - int(content * fraction)
    ends = np.cumsum([len(d) + 1 for d in docs])
    starts = ends - np.array([len(d) + 1 for d in docs])
    counts = (int(np.count_nonzero(starts < cut)), int(np.count_nonzero(ends > cut)))
    return tokens[:cut], tokens[cut:], counts


def load_corpus(data: str | None = None, validation_fraction: float = 0.05) -> Corpus:
    """Load the stdlib corpus (`data=None`) or comma-separated user files/directories, split for validation.

    Splits are by file (crc32 of the relative path); a single user file, or user files whose
    hash split leaves a side empty, is split instead at the last `validation_fraction` of its bytes.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise NeurojaxError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if data is None:
        root = Path(sysconfig.get_paths()["stdlib"])
        files = [(rel, root / rel) for rel in stdlib_files(str(root))]
        name = STDLIB_NAME
        if not files:
            raise NeurojaxError(f"no Python standard-library sources found under {str(root)!r}")
    else:
        files = _user_files(data)
        name = "user:" + ",".join(e.strip() for e in data.split(",") if e.strip())

    docs = [(key, _read(path)) for key, path in files]
    val_docs = [d for key, d in docs if is_validation_file(key, validation_fraction)]
    train_docs = [d for key, d in docs if not is_validation_file(key, validation_fraction)]
    if len(docs) == 1 or (data is not None and not (val_docs and train_docs)):
        train, validation, num_files = _tail_split([d for _, d in docs], validation_fraction)
        if len(train) == 0 or len(validation) <= 1:
            raise NeurojaxError(
                f"corpus {name!r} is too small ({len(train) + len(validation)} tokens) to split "
                f"into non-empty train and validation parts with validation_fraction={validation_fraction}")
    else:
        if not val_docs or not train_docs:
            raise NeurojaxError(
                f"corpus {name!r} has {len(docs)} files, too few for a non-empty train and validation split "
                f"with validation_fraction={validation_fraction}")
        train, validation = _encode_documents(train_docs), _encode_documents(val_docs)
        num_files = (len(train_docs), len(val_docs))
    train.setflags(write=False)
    validation.setflags(write=False)
    return Corpus(train=train, validation=validation, name=name, num_files=num_files,
                  fingerprint=fingerprint(train, validation))


def documents(stream: np.ndarray) -> list[str]:
    """The documents of a byte-token stream (separated by `ByteTokenizer.EOS`) as text."""
    stream = np.asarray(stream)
    cuts = np.nonzero(stream == ByteTokenizer.EOS)[0]
    docs, start = [], 0
    for end in list(cuts) + [len(stream)]:
        if end > start:
            docs.append(bytes(stream[start:end].astype(np.uint8)).decode("utf-8", errors="replace"))
        start = end + 1
    return docs


def retokenize(stream: np.ndarray, tokenizer) -> np.ndarray:
    """A byte-token stream re-encoded with a subword `tokenizer` (`neurojax.data.hf_tokenizer`): each document's
    ids, followed by the tokenizer's EOS when it has one, as one int32 array."""
    eos = [] if tokenizer.EOS is None else [int(tokenizer.EOS)]
    ids = [i for doc in tokenizer.encode_many(documents(stream)) for i in (*doc, *eos)]
    return np.asarray(ids, np.int32)
