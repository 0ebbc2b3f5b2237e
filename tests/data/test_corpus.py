import dataclasses
import sysconfig
import zlib

import numpy as np
import pytest

from neurojax.data import ByteTokenizer, is_validation_file, load_corpus, stdlib_files
from neurojax.errors import NeurojaxError

EOS = ByteTokenizer.EOS


@pytest.fixture(scope="module")
def stdlib_corpus():
    return load_corpus()


def test_stdlib_corpus_non_empty_and_typed(stdlib_corpus):
    c = stdlib_corpus
    assert c.name == "python-stdlib"
    assert c.train.dtype == np.uint16 and c.validation.dtype == np.uint16
    assert len(c.train) > 1_000_000 and len(c.validation) > 10_000
    assert c.num_files[0] > 100 and c.num_files[1] > 5
    assert c.train.max() <= EOS and c.validation.max() <= EOS
    assert len(c.fingerprint) == 16 and int(c.fingerprint, 16) >= 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.name = "x"
    with pytest.raises(ValueError):
        c.train[0] = 1


def test_stdlib_corpus_deterministic(stdlib_corpus):
    again = load_corpus()
    assert again == stdlib_corpus
    assert again.fingerprint == stdlib_corpus.fingerprint
    assert np.array_equal(again.validation, stdlib_corpus.validation)


def test_stdlib_split_is_by_file_and_excludes_site_packages(stdlib_corpus):
    files = stdlib_files()
    assert files == sorted(files) and all(f.endswith(".py") for f in files)
    for bad in ("site-packages", "dist-packages", "__pycache__"):
        assert not any(bad in f.split("/") for f in files)
    val = [f for f in files if zlib.crc32(f.encode()) % 1000 < 50]
    train = [f for f in files if f not in set(val)]
    assert [f for f in files if is_validation_file(f, 0.05)] == val
    assert stdlib_corpus.num_files == (len(train), len(val))
    root = sysconfig.get_paths()["stdlib"]
    sizes = {f: len(open(f"{root}/{f}", "rb").read()) for f in val}
    assert len(stdlib_corpus.validation) == sum(sizes[f] + 1 for f in val)
    assert int(np.count_nonzero(stdlib_corpus.validation == EOS)) == len(val)
    assert int(np.count_nonzero(stdlib_corpus.train == EOS)) == len(train)
    # First validation document is exactly the first validation file's bytes.
    first = open(f"{root}/{val[0]}", "rb").read()
    assert stdlib_corpus.validation[:len(first)].tobytes() == np.frombuffer(first, np.uint8).astype(np.uint16).tobytes()


def test_stdlib_files_skips_excluded_dirs(tmp_path):
    for rel in ["a.py", "pkg/b.py", "pkg/c.txt", "site-packages/x.py", "deep/dist-packages/y.py",
                "pkg/__pycache__/z.py"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    assert stdlib_files(str(tmp_path)) == ["a.py", "pkg/b.py"]


def _decode_docs(tokens):
    text = np.asarray(tokens).astype(np.int64)
    docs, cur = [], []
    for t in text:
        if t == EOS:
            docs.append(bytes(cur))
            cur = []
        else:
            cur.append(int(t))
    return docs, bytes(cur)


def test_user_directory_and_files(tmp_path):
    contents = {f"d/f{i:02d}.txt": (f"file {i} " * 50).encode() for i in range(60)}
    contents["d/sub/deep.txt"] = b"deep file " * 30
    for rel, data in contents.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "d/.hidden").write_bytes(b"SECRET")
    (tmp_path / "d/.git").mkdir()
    (tmp_path / "d/.git/obj").write_bytes(b"SECRET")
    extra = tmp_path / "extra.txt"
    extra.write_bytes(b"extra content " * 20)

    c = load_corpus(f"{tmp_path / 'd'}, {extra}", validation_fraction=0.2)
    assert c.name == f"user:{tmp_path / 'd'},{extra}"
    train_docs, rest = _decode_docs(c.train)
    val_docs, rest2 = _decode_docs(c.validation)
    assert rest == b"" and rest2 == b""
    keys = sorted(k[2:] for k in contents) + ["extra.txt"]
    data = {k[2:]: v for k, v in contents.items()} | {"extra.txt": extra.read_bytes()}
    expect_val = [data[k] for k in keys if zlib.crc32(k.encode()) % 1000 < 200]
    expect_train = [data[k] for k in keys if zlib.crc32(k.encode()) % 1000 >= 200]
    assert val_docs == expect_val and train_docs == expect_train
    assert c.num_files == (len(expect_train), len(expect_val))
    assert not any(b"SECRET" in d for d in train_docs + val_docs)
    assert load_corpus(f"{tmp_path / 'd'},{extra}", validation_fraction=0.2).fingerprint == c.fingerprint


def test_single_file_split_at_tail(tmp_path):
    path = tmp_path / "one.txt"
    payload = bytes(range(256)) * 4  # 1024 bytes
    path.write_bytes(payload)
    c = load_corpus(str(path), validation_fraction=0.25)
    assert c.num_files == (1, 1)
    assert len(c.train) == 768 and c.train.tobytes() == np.frombuffer(payload[:768], np.uint8).astype(np.uint16).tobytes()
    assert c.validation[:-1].astype(np.uint8).tobytes() == payload[768:]
    assert c.validation[-1] == EOS


def test_fingerprint_depends_on_data(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_bytes(b"hello world " * 20)
    b.write_bytes(b"hello world " * 19 + b"hello World ")
    assert load_corpus(str(a)).fingerprint != load_corpus(str(b)).fingerprint


def test_missing_path_error(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(NeurojaxError, match=r"data path .*nope\.txt.* does not exist"):
        load_corpus(str(missing))


def test_no_readable_files_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/.hidden").write_text("x")
    with pytest.raises(NeurojaxError, match="no readable files"):
        load_corpus(str(tmp_path / "empty"))


def test_too_small_corpus_error(tmp_path):
    tiny = tmp_path / "tiny.txt"
    tiny.write_bytes(b"abc")
    with pytest.raises(NeurojaxError, match="too small"):
        load_corpus(str(tiny), validation_fraction=0.05)


def test_bad_validation_fraction():
    with pytest.raises(NeurojaxError, match="validation_fraction"):
        load_corpus(None, validation_fraction=0.0)
