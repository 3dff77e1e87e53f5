"""QA/classification exact match against hand-computed counts; caption metrics against direct
pycocoevalcap scorer calls (and a few values worked out by hand)."""

from __future__ import annotations

import pytest

from mixma.data.annotations import QA, VideoRecord
from mixma.eval import metrics
from mixma.eval.metrics import (
    FIRST_WORD_DATASETS,
    blip_caption,
    blip_question,
    caption_metrics,
    caption_references,
    exact_match_accuracy,
    label_references,
    normalize_answer,
    qa_references,
    simple_tokenize,
)

# ---------------------------------------------------------------------------------------------
# Normalisation


def test_blip_question_deletes_marks_and_truncates():
    assert blip_question('What is "the" man (doing)?  ') == "what is the man doing?"
    assert blip_question("One: two; three~ four", max_words=2) == "one two"


def test_blip_caption_replaces_marks_with_spaces():
    assert blip_caption("A man: plays... the GUITAR!") == "a man plays the guitar"
    assert blip_caption("w " * 60, max_words=50) == " ".join(["w"] * 50)


def test_normalize_answer():
    assert normalize_answer(" Two\tPeople. ") == "two people"
    assert normalize_answer("Yes!") == "yes"
    assert normalize_answer("ice-cream, please?") == "ice-cream, please?"  # only . ! " ( ) * # : ; ~ go


# ---------------------------------------------------------------------------------------------
# Exact match

REFS = {"q1": "man", "q2": "guitar", "q3": "kitchen", "q4": "two"}
PREDS = {
    "q1": ["Man.", "woman"],                                   # top-1 after normalisation
    "q2": ["piano", "drums", "guitar", "bass", "violin"],       # third beam: top-5 only
    "q3": ["a", "b", "c", "d", "e", "kitchen"],                # sixth beam: neither
    "q4": "two people",                                        # right only by its first word
}


def test_top1_and_top5_counted_by_hand():
    assert exact_match_accuracy(PREDS, REFS) == {"top1": 25.0, "top5": 50.0, "count": 4, "correct_top1": 1, "correct_top5": 2}


def test_first_word_rule():
    result = exact_match_accuracy(PREDS, REFS, first_word=True)
    assert (result["top1"], result["top5"], result["correct_top1"], result["correct_top5"]) == (50.0, 75.0, 2, 3)
    assert FIRST_WORD_DATASETS == {"msrvtt_qa", "msvd_qa"}


def test_without_normalisation_strings_must_be_identical():
    result = exact_match_accuracy(PREDS, REFS, normalize=False)
    assert (result["correct_top1"], result["correct_top5"]) == (0, 1)


def test_per_type_breakdown():
    result = exact_match_accuracy(PREDS, REFS, types={"q1": "who", "q2": "what", "q3": "what"}, first_word=True)
    assert result["per_type"] == {
        "unknown": {"top1": 100.0, "top5": 100.0, "count": 1, "correct_top1": 1, "correct_top5": 1},
        "what": {"top1": 0.0, "top5": 50.0, "count": 2, "correct_top1": 0, "correct_top5": 1},
        "who": {"top1": 100.0, "top5": 100.0, "count": 1, "correct_top1": 1, "correct_top5": 1},
    }


def test_exact_match_input_errors():
    with pytest.raises(ValueError, match=r"no prediction for 1 of 4 references \(e.g. 'q4'\)"):
        exact_match_accuracy({k: v for k, v in PREDS.items() if k != "q4"}, REFS)
    with pytest.raises(ValueError, match=r"1 prediction\(s\) for ids that have no reference"):
        exact_match_accuracy({**PREDS, "q9": "x"}, REFS)
    with pytest.raises(ValueError, match="no references"):
        exact_match_accuracy({}, {})
    with pytest.raises(ValueError, match="must be a string or a list of beams"):
        exact_match_accuracy({**PREDS, "q1": 3}, REFS)


def test_references_from_records():
    records = [
        VideoRecord("v1", "v1.mp4", qa=[QA("who?", "man", "who", id="7"), QA("what?", "dog")], label="cat", captions=["a cat"]),
        VideoRecord("v2", "v2.mp4"),
    ]
    assert qa_references(records) == ({"7": "man", "v1#1": "dog"}, {"7": "who", "v1#1": None})
    assert label_references(records) == {"v1": "cat"}
    assert caption_references(records) == {"v1": ["a cat"]}
    with pytest.raises(ValueError, match="question id '7' appears twice"):
        qa_references(records + [VideoRecord("v3", "v3.mp4", qa=[QA("q?", "a", id="7")])])


# ---------------------------------------------------------------------------------------------
# Captioning

# Already lowercase and unpunctuated, so the simple tokenizer leaves them as they are; the
# references differ between videos so that CIDEr's IDF is informative.
CAPTION_REFS = {
    "v1": ["a man is playing a guitar on stage", "a musician plays guitar", "a man performs a song"],
    "v2": ["a woman is cooking pasta in a kitchen", "someone boils noodles", "a cook stirs a pot of pasta"],
    "v3": ["two dogs run across a field", "dogs are playing outside", "a pair of dogs chase each other on grass"],
}
CAPTION_PREDS = {"v1": "a man plays a guitar", "v2": "a woman cooks pasta in the kitchen", "v3": "two dogs play on the grass"}


def direct_scores(gts: dict, res: dict) -> dict:
    """pycocoevalcap's scorers called directly, as COCOEvalCap does, scaled to percent."""
    import contextlib
    import io

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    with contextlib.redirect_stdout(io.StringIO()):
        bleu, _ = Bleu(4).compute_score(gts, res)
    scores = {f"Bleu_{i + 1}": 100 * b for i, b in enumerate(bleu)}
    scores["ROUGE_L"] = 100 * Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = 100 * Cider().compute_score(gts, res)[0]
    return scores


def test_caption_metrics_match_pycocoevalcap_scorers():
    ours = caption_metrics(CAPTION_PREDS, CAPTION_REFS, tokenizer="simple", meteor=False)
    expected = direct_scores(CAPTION_REFS, {k: [v] for k, v in CAPTION_PREDS.items()})
    assert ours.pop("count") == 3 and ours.pop("tokenizer") == "simple"
    assert ours == pytest.approx(expected, rel=1e-12)
    assert ours["CIDEr"] > 0 and "METEOR" not in ours


def test_bleu1_and_rouge_l_by_hand():
    # "a man is cooking" vs "a man cooks food": 2 of 4 unigrams match, equal lengths (no brevity
    # penalty) -> BLEU-1 = 0.5; LCS = 2 -> P = R = 0.5 -> ROUGE-L F(beta=1.2) = 0.5.
    result = caption_metrics({"v": "a man is cooking"}, {"v": ["a man cooks food"]}, tokenizer="simple", meteor=False)
    assert result["Bleu_1"] == pytest.approx(50.0, abs=1e-6)
    assert result["ROUGE_L"] == pytest.approx(50.0, abs=1e-9)


def test_simple_tokenizer():
    assert simple_tokenize("Don't stop at 3.5 km!") == "don t stop at 3 5 km"
    assert simple_tokenize("  Café, naïve_test ") == "café naïve test"


@pytest.mark.skipif(not metrics.java_available(), reason="needs java")
def test_ptb_and_meteor_match_pycocoevalcap():
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    refs = {
        "v1": ["A man is playing a guitar on stage.", "A musician plays guitar!", "The man performs a song, happily."],
        "v2": ["A woman is cooking pasta in a kitchen.", "Someone boils noodles.", "A cook stirs a pot of (fresh) pasta."],
        "v3": ["Two dogs run across a field.", "Dogs are playing outside.", "A pair of dogs chase each other on grass."],
    }
    preds = {"v1": "A man plays a guitar.", "v2": "A woman cooks pasta in the kitchen!", "v3": "Two dogs don't stop playing."}
    ours = caption_metrics(preds, refs)
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tokenizer.tokenize({k: [{"caption": c}] for k, v in preds.items() for c in [v]})
    assert res["v3"] == ["two dogs do n't stop playing"]
    assert ours.pop("tokenizer") == "ptb" and ours.pop("count") == 3
    # METEOR's Java start-up takes seconds, so the direct call's result was recorded once:
    # pycocoevalcap 1.2 `Meteor().compute_score(gts, res)` on exactly these inputs.
    assert ours.pop("METEOR") == pytest.approx(100 * 0.3524922144814909, rel=1e-9)
    assert ours == pytest.approx(direct_scores(gts, res), rel=1e-9)


def test_without_java_meteor_is_skipped_with_a_notice(monkeypatch):
    monkeypatch.setattr(metrics, "java_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="java not found on PATH: METEOR skipped, captions tokenized with the simple tokenizer"):
        result = caption_metrics(CAPTION_PREDS, CAPTION_REFS)
    assert result["tokenizer"] == "simple" and "METEOR" not in result
    with pytest.raises(ValueError, match="need java"):
        caption_metrics(CAPTION_PREDS, CAPTION_REFS, tokenizer="ptb")
    with pytest.raises(ValueError, match="need java"):
        caption_metrics(CAPTION_PREDS, CAPTION_REFS, tokenizer="simple", meteor=True)


def test_caption_input_errors():
    with pytest.raises(ValueError, match=r"no prediction for 1 of 3 videos \(e.g. 'v3'\)"):
        caption_metrics({"v1": "x", "v2": "y"}, CAPTION_REFS, tokenizer="simple", meteor=False)
    with pytest.raises(ValueError, match="must be a non-empty list of captions"):
        caption_metrics({"v1": "x"}, {"v1": []}, tokenizer="simple", meteor=False)
    with pytest.raises(ValueError, match="must be one caption"):
        caption_metrics({"v1": ["x", "y"]}, {"v1": ["x"]}, tokenizer="simple", meteor=False)
    with pytest.raises(ValueError, match="tokenizer must be"):
        caption_metrics(CAPTION_PREDS, CAPTION_REFS, tokenizer="nltk")
