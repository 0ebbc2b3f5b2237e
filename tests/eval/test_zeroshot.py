"""Zero-shot harness: lm-eval's prompts per task, tokenization, truncation, acc / acc_norm / stderr on a
constructed model whose log-probabilities are set by hand, batching, and bad input."""
import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from neurojax.data import ByteTokenizer
from neurojax.errors import NeurojaxError
from neurojax.eval import zeroshot as zs

LN2 = math.log(2.0)


def _write(path, docs):
    path.write_text("".join((d if isinstance(d, str) else json.dumps(d)) + "\n" for d in docs), encoding="utf-8")
    return str(path)


# ---- prompts per task (expected strings written by hand from the spec) ----------------------------

def test_arc_prompt_both_layouts_and_digit_labels():
    doc = {"id": "x", "question": "Which is a gas?", "choices": {"text": ["ice", "steam", "rock"],
                                                                  "label": ["1", "2", "3"]}, "answerKey": "2"}
    ex = zs.parse_example("arc_easy", doc, "arc.jsonl:7")
    assert ex.contexts == ("Question: Which is a gas?\nAnswer:",) * 3
    assert ex.continuations == (" ice", " steam", " rock")
    assert ex.choice_lengths == (3, 5, 4) and ex.gold == 1 and ex.source == "arc.jsonl:7"
    ai2 = {"question": {"stem": "Which is a gas?", "choices": [{"text": "ice", "label": "A"},
                                                               {"text": "steam", "label": "B"}]}, "answerKey": "B"}
    ex = zs.parse_example("arc_challenge", ai2)
    assert ex.contexts == ("Question: Which is a gas?\nAnswer:",) * 2 and ex.continuations == (" ice", " steam")
    assert ex.gold == 1


def test_openbookqa_prompt_is_the_bare_stem_and_the_key_may_have_a_space():
    doc = {"question_stem": "The sun is a", "choices": {"text": ["star", "planet"], "label": ["A", "B"]},
           "answerKey": " A"}
    ex = zs.parse_example("openbookqa", doc)
    assert ex.contexts == ("The sun is a", "The sun is a") and ex.continuations == (" star", " planet")
    assert ex.gold == 0 and ex.choice_lengths == (4, 6)


def test_piqa_prompt():
    ex = zs.parse_example("piqa", {"goal": "To open a jar", "sol1": "twist the lid", "sol2": "eat the lid",
                                   "label": 0})
    assert ex.contexts == ("Question: To open a jar\nAnswer:",) * 2
    assert ex.continuations == (" twist the lid", " eat the lid") and ex.gold == 0


def test_hellaswag_prompt_and_cleaning():
    doc = {"activity_label": "Home and Garden", "ctx_a": "[header] How to grow tomatoes [title] Pick a sunny spot.",
           "ctx_b": "PLANT them  deep", "endings": [" [step]   a  b", "water them [title] daily"], "label": "1"}
    ex = zs.parse_example("hellaswag", doc)
    # capitalize() lowercases the rest; " [title]" -> ". "; "[header]" removed; "  " -> " " in one pass.
    assert ex.contexts == ("Home and Garden: How to grow tomatoes. Pick a sunny spot. Plant them deep",) * 2
    # strip, drop "[step]", one pass of "  " -> " ": three spaces leave two. " [title] " -> ".  " -> ". ".
    assert ex.continuations == ("   a b", " water them. daily")
    assert ex.choice_lengths == (len("  a b"), len("water them. daily")) and ex.gold == 1
    assert zs.hellaswag_preprocess("  x [title] y [a]  [b] z  ") == "x. y  z"  # four spaces -> two (one pass)


def test_winogrande_partial_scoring():
    doc = {"sentence": "Sarah was a better surgeon than Maria so _ always got the harder cases.",
           "option1": "Sarah", "option2": "Maria", "answer": "2"}
    ex = zs.parse_example("winogrande", doc)
    assert ex.contexts == ("Sarah was a better surgeon than Maria so Sarah",
                           "Sarah was a better surgeon than Maria so Maria")
    assert ex.continuations == (" always got the harder cases.",) * 2 and ex.gold == 1
    assert zs.TASKS["winogrande"].metrics == ("acc",)


# ---- tokenization and truncation -----------------------------------------------------------------

class RecordingTokenizer(ByteTokenizer):
    def __init__(self):
        self.calls = []

    def encode(self, text, add_bos=False, add_eos=False):
        self.calls.append((text, add_bos))
        return super().encode(text, add_bos=add_bos)


def test_encode_pair_moves_trailing_space_and_slices_the_whole_encoding():
    tok = RecordingTokenizer()
    ctx, cont = zs.encode_pair(tok, "Answer: ", "x", add_bos=True)
    assert tok.calls == [("Answer: x", True), ("Answer:", True)]  # never the continuation alone
    assert ctx == [tok.BOS] + list(b"Answer:") and cont == list(b" x")
    tok.calls.clear()
    ctx, cont = zs.encode_pair(tok, "Q", " y")  # add_bos None: the tokenizer's own default
    assert tok.calls == [("Q y", False), ("Q", False)] and ctx == list(b"Q") and cont == list(b" y")
    # An empty context is scored after the BOS token; the continuation is then encoded alone.
    assert zs.encode_pair(ByteTokenizer(), "", " z", add_bos=False) == ([ByteTokenizer.BOS], list(b" z"))


def test_truncation_keeps_the_last_max_length_plus_one_tokens_minus_the_last():
    req = zs.make_request(list(range(10)), [10, 11, 12], max_length=8, where="f:1")
    assert req.tokens == (4, 5, 6, 7, 8, 9, 10, 11) and req.continuation == (10, 11, 12)
    with pytest.raises(NeurojaxError, match="f:1: a continuation of 3 tokens is longer than max_length=2"):
        zs.make_request([1], [2, 3, 4], max_length=2, where="f:1")


# ---- scoring on a constructed model ----------------------------------------------------------------

CHARS = " qabcxQ"


class CharTokenizer:
    """One id per character of CHARS; BOS = len(CHARS)."""

    BOS = len(CHARS)

    def encode(self, text, add_bos=False):
        return np.array(([self.BOS] if add_bos else []) + [CHARS.index(c) for c in text], np.int32)


class BigramModel:
    """A constructed "model": logits at a position = log P(next | this token), from a hand-set table."""

    def apply(self, variables, tokens):
        return variables["logp"][tokens], None


def bigram_table():
    """P(next | prev), rows summing to 1 (so log-softmax of the logits is exactly log P)."""
    v = len(CHARS) + 1
    p = np.full((v, v), 1.0 / (v - 1))
    i = {c: CHARS.index(c) for c in CHARS}

    def row(prev, probs):
        r = np.zeros(v)
        for c, q in probs.items():
            r[i[c]] = q
        rest = [k for k in range(v) if r[k] == 0]
        r[rest] = (1.0 - sum(probs.values())) / len(rest)
        p[i[prev]] = r

    row("q", {" ": 0.5})          # after q: " " with 1/2 (the argmax)
    row(" ", {"a": 0.5, "b": 0.25})  # after " ": a 1/2 (argmax), b 1/4
    row("a", {"b": 0.25, "c": 0.5})  # after a: b 1/4, c 1/2
    return {"logp": jnp.asarray(np.log(p), jnp.float32)}


def test_acc_and_acc_norm_match_hand_computation(tmp_path):
    # Choice "ab": log P(" "|q) + log P(a|" ") + log P(b|a) = -ln2 - ln2 - 2 ln2 = -4 ln2; per char: -2 ln2.
    # Choice "b":  log P(" "|q) + log P(b|" ") = -ln2 - 2 ln2 = -3 ln2; per char: -3 ln2.
    # So acc picks "b" and acc_norm picks "ab".
    docs = [{"question_stem": "q", "choices": {"text": ["ab", "b"], "label": ["A", "B"]}, "answerKey": key}
            for key in ("A", "B", "B")]
    docs.append({"question_stem": "q", "choices": {"text": ["a", "ab", "b"], "label": ["A", "B", "C"]},
                 "answerKey": "A"})  # "a": -2 ln2, the best by both metrics; "a" is also the greedy continuation
    path = _write(tmp_path / "obqa.jsonl", docs)
    out = zs.evaluate_zeroshot(BigramModel(), bigram_table(), {"openbookqa": path}, CharTokenizer(),
                               batch_size=3, progress=False)
    r = out["tasks"]["openbookqa"]
    preds = r["predictions"]
    np.testing.assert_allclose(preds[0]["loglik"], [-4 * LN2, -3 * LN2], rtol=1e-6)
    np.testing.assert_allclose(preds[3]["loglik"], [-2 * LN2, -4 * LN2, -3 * LN2], rtol=1e-6)
    assert preds[3]["is_greedy"] == [True, False, False]
    acc, acc_norm = [0, 1, 1, 1], [1, 0, 0, 1]
    assert r["n"] == 4 and r["requests"] == 9
    assert r["acc"] == pytest.approx(0.75) and r["acc_norm"] == pytest.approx(0.5)
    assert r["acc_stderr"] == pytest.approx(np.std(acc, ddof=1) / 2) == pytest.approx(0.25)
    assert r["acc_norm_stderr"] == pytest.approx(np.std(acc_norm, ddof=1) / 2)
    assert out["bos"] == "tokenizer default (no BOS)" and out["max_length"] == zs.DEFAULT_MAX_LENGTH
    # The batch size (and so the padding and the order of scoring) does not change any score.
    for b in (1, 2, 16):
        again = zs.evaluate_zeroshot(BigramModel(), bigram_table(), {"openbookqa": path}, CharTokenizer(),
                                     batch_size=b, progress=False)["tasks"]["openbookqa"]
        for p, q in zip(again["predictions"], preds):
            np.testing.assert_allclose(p["loglik"], q["loglik"], rtol=1e-6)


def test_ties_go_to_the_first_choice_and_stderr_of_one_is_nan():
    assert zs.choice_metrics([-1.0, -1.0], [3, 3], 0) == {"acc": 1.0, "acc_norm": 1.0}
    assert zs.choice_metrics([-1.0, -1.0], [3, 3], 1) == {"acc": 0.0, "acc_norm": 0.0}
    assert zs.choice_metrics([-4.0, -3.0], [2, 1], 0) == {"acc": 0.0, "acc_norm": 1.0}
    assert math.isnan(zs.mean_stderr([1.0]))
    assert zs.mean_stderr([0, 1, 1]) == pytest.approx(1 / 3)  # sqrt(1/3) / sqrt(3)


def test_progress_line(tmp_path):
    import io

    stream = io.StringIO()
    bar = zs.Progress("piqa", 4, stream=stream, interval=0.0)
    bar.update(2)
    bar.update(4)
    text = stream.getvalue()
    assert "\rpiqa: 2/4 requests" in text and "\rpiqa: 4/4 requests" in text and text.endswith(" s\n")


def test_paper_table_layout():
    results = {"tasks": {t: {"n": 10, "acc": 0.5, "acc_norm": 0.25, "acc_stderr": 0.1, "acc_norm_stderr": 0.1}
                         for t in ("arc_easy", "hellaswag")}, "bos": "no BOS", "max_length": 64}
    columns, rows, notes = zs.paper_table(results, "tiny")
    assert columns == ["model", "ARC-e", "ARC-c", "HellaSwag", "OBQA", "PIQA", "WinoGrande", "Avg"]
    assert rows[0] == ["tiny", 50.0, "-", 25.0, "-", "-", "-", "37.5 (2 of 6 tasks)"]  # ARC-e acc, HellaSwag acc_norm
    assert rows[1] == ["MatMul-free 370M (published, paper)", "42.6", "23.8", "32.8", "28.4", "63.0", "49.2", "40.3"]
    assert rows[2][1:] == ["38.85", "22.27", "32.45", "28.40", "62.68", "49.72", "39.06"]
    assert all("published" in r[0] for r in rows[1:]) and any("measured in this run" in n for n in notes)
    _, rows, _ = zs.paper_table(results, "tiny", metric="acc")
    assert rows[0][1:4] == [50.0, "-", 50.0]
    _, detail = zs.detail_table(results)
    assert detail[0] == ["arc_easy", 10, 50.0, 10.0, 25.0, 10.0]


# ---- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("task, line, match", [
    ("piqa", {"goal": "g", "sol1": "a", "label": 0}, "piqa example is missing field 'sol2'"),
    ("arc_easy", {"question": "q", "choices": {"text": ["a"]}, "answerKey": "A"}, "missing field 'choices.label'"),
    ("arc_easy", {"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "C"},
     "answerKey 'C' is not one of the choice labels"),
    ("hellaswag", {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["d"], "label": ""},
     "field 'label' must be an integer index"),
    ("hellaswag", {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["d"], "label": 3},
     "gold answer index 3 is outside the 1 choices"),
    ("winogrande", {"sentence": "no blank", "option1": "a", "option2": "b", "answer": "1"}, "no '_' blank"),
    ("winogrande", {"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "3"}, "must be \"1\" or \"2\""),
    ("openbookqa", "{not json", "not a JSON object"),
    ("openbookqa", [1, 2], "expected a JSON object"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, task, line, match):
    good = {"piqa": {"goal": "g", "sol1": "a", "sol2": "b", "label": 1},
            "arc_easy": {"question": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"},
            "hellaswag": {"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["d"], "label": 0},
            "winogrande": {"sentence": "a _ b", "option1": "a", "option2": "b", "answer": "1"},
            "openbookqa": {"question_stem": "q", "choices": {"text": ["a"], "label": ["A"]}, "answerKey": "A"}}[task]
    path = _write(tmp_path / f"{task}.jsonl", [good, "", line])  # line 2 is blank: the bad one is line 3
    with pytest.raises(NeurojaxError) as e:
        zs.load_task(task, path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:3: ") and match in msg, msg


def test_other_bad_input(tmp_path):
    with pytest.raises(NeurojaxError, match="unknown zero-shot task 'mmlu'"):
        zs.load_task("mmlu", str(tmp_path / "x.jsonl"))
    with pytest.raises(NeurojaxError, match="cannot read the piqa file"):
        zs.load_task("piqa", str(tmp_path / "missing.jsonl"))
    with pytest.raises(NeurojaxError, match="holds no examples"):
        zs.load_task("piqa", _write(tmp_path / "empty.jsonl", [""]))
    path = _write(tmp_path / "p.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}] * 3)
    assert len(zs.load_task("piqa", path, limit=2)) == 2
    with pytest.raises(NeurojaxError, match="limit must be a positive integer"):
        zs.load_task("piqa", path, limit=0)
    with pytest.raises(NeurojaxError, match="metric must be one of"):
        zs.column_metric("piqa", "f1")
    with pytest.raises(NeurojaxError, match="batch_size must be a positive integer"):
        zs.evaluate_zeroshot(BigramModel(), bigram_table(), {"piqa": path}, CharTokenizer(), batch_size=0,
                             progress=False)
    with pytest.raises(NeurojaxError, match="max_length must be a positive integer"):
        zs.evaluate_zeroshot(BigramModel(), bigram_table(), {"piqa": path}, CharTokenizer(), max_length=0,
                             progress=False)


def test_token_ids_outside_the_model_vocabulary_are_refused(tmp_path):
    class Small(BigramModel):
        class config:  # a stand-in for a model config
            vocab_size = 4
            max_seq_len = 16

    path = _write(tmp_path / "p.jsonl", [{"goal": "a", "sol1": "a", "sol2": "b", "label": 1}])
    with pytest.raises(NeurojaxError, match=r"p.jsonl:1: token id \d+ from the tokenizer is outside"):
        zs.evaluate_zeroshot(Small(), bigram_table(), {"piqa": path}, ByteTokenizer(), progress=False)
