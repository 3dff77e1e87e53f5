"""Metrics for open-ended QA, classification and captioning, following MA-LMM's evaluation.

QA and classification are *generative*: the model writes an answer (or a class name) with beam
search, and a prediction counts when it equals the reference string after normalisation.
top-1 looks at the first beam only, top-5 at any of the first five beams. For MSRVTT-QA and
MSVD-QA MA-LMM keeps only the first word of each beam (`first_word=True`,
`FIRST_WORD_DATASETS`). There is no VQA-style soft accuracy and no judge model.

Normalisation (`normalize_answer`, applied to predictions and references alike): lowercase;
delete the characters . ! " ( ) * # : ; ~ (MA-LMM's `blip_question` processor); collapse runs
of whitespace to one space and strip both ends. Nothing else: no article or number-word
rewriting, and other punctuation (commas, hyphens, apostrophes, ?) is kept. MA-LMM compares
the generated text (stripped) with the raw reference; normalising both sides only forgives
differences in case, those characters and spacing. Pass `normalize=False` for MA-LMM's
literal comparison.

Captioning uses the COCO caption scorers of pycocoevalcap: BLEU-1..4, ROUGE-L, CIDEr, and
METEOR when `java` is on PATH. Scores are multiplied by 100, as papers report them. SPICE is
never computed (it downloads Stanford CoreNLP on first use).
"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mixma.data.annotations import VideoRecord

FIRST_WORD_DATASETS = frozenset({"msrvtt_qa", "msvd_qa"})  # MA-LMM scores only the first word there
_BLIP_CHARS = re.compile(r"[.!\"()*#:;~]")
_SIMPLE_TOKEN = re.compile(r"[^\W_]+")  # runs of letters and digits
_LINE_BREAKS = re.compile(r"[\r\n\x0b\x0c\x85\u2028\u2029]")


# ---------------------------------------------------------------------------------------------
# Text normalisation


def blip_question(text: str, max_words: int | None = 50) -> str:
    """MA-LMM's (LAVIS) question processor: lowercase, delete . ! " ( ) * # : ; ~,
    strip trailing spaces, keep at most `max_words` space-separated words."""
    text = _BLIP_CHARS.sub("", text.lower()).rstrip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if max_words is not None and len(words) > max_words else text


def blip_caption(text: str, max_words: int | None = 50) -> str:
    """MA-LMM's (LAVIS) caption processor: lowercase, replace . ! " ( ) * # : ; ~ with a space,
    collapse runs of two or more whitespace characters to one space, strip, keep at most
    `max_words` words."""
    text = _BLIP_CHARS.sub(" ", text.lower())
    text = re.sub(r"\s{2,}", " ", text).rstrip("\n").strip(" ")
    words = text.split(" ")
    return " ".join(words[:max_words]) if max_words is not None and len(words) > max_words else text


def normalize_answer(text: str) -> str:
    """`blip_question` without truncation, then whitespace collapsed and both ends stripped."""
    return " ".join(blip_question(text, max_words=None).split())


# ---------------------------------------------------------------------------------------------
# Exact match (QA and classification)


def _check_ids(predictions: Mapping[str, Any], references: Mapping[str, Any], what: str) -> None:
    if not references:
        raise ValueError(f"no {what} to evaluate against")
    missing = [k for k in references if k not in predictions]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:5])
        raise ValueError(f"no prediction for {len(missing)} of {len(references)} {what} (e.g. {shown})")
    extra = [k for k in predictions if k not in references]
    if extra:
        shown = ", ".join(repr(k) for k in extra[:5])
        raise ValueError(f"{len(extra)} prediction(s) for ids that have no reference (e.g. {shown})")


def _beams(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"prediction for {key!r} must be a string or a list of beams (strings), got {value!r}")


def _scores(hits: list[tuple[bool, bool]]) -> dict[str, float | int]:
    n = len(hits)
    top1, top5 = sum(h[0] for h in hits), sum(h[1] for h in hits)
    return {"top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n, "count": n, "correct_top1": top1, "correct_top5": top5}


def exact_match_accuracy(
    predictions: Mapping[str, str | Sequence[str]],
    references: Mapping[str, str],
    *,
    types: Mapping[str, str | None] | None = None,
    first_word: bool = False,
    normalize: bool = True,
) -> dict[str, Any]:
    """Generative QA / classification accuracy by exact match, top-1 and top-5.

    Args:
        predictions: id -> the generated answer, or the list of beams best first (top-5 looks
            at the first five; a single string counts as one beam).
        references: id -> the reference answer or class name.
        types: id -> question type (e.g. "what", "yes_no"); adds a per-type breakdown, with
            ids of no known type under "unknown".
        first_word: keep only the first word of each beam (MA-LMM on MSRVTT-QA / MSVD-QA).
        normalize: compare `normalize_answer` forms; False compares strings as they are.

    Returns:
        `{"top1": %, "top5": %, "count": n, "correct_top1": k1, "correct_top5": k5}`, plus
        `"per_type": {type: the same five keys}` when `types` is given.

    Raises:
        ValueError: no references, a reference without a prediction, a prediction without a
            reference, or a prediction or reference of the wrong type.
    """
    _check_ids(predictions, references, "references")
    hits: list[tuple[bool, bool]] = []
    by_type: dict[str, list[tuple[bool, bool]]] = {}
    for key, reference in references.items():
        if not isinstance(reference, str):
            raise ValueError(f"reference for {key!r} must be a string, got {reference!r}")
        beams = _beams(predictions[key], key)
        if normalize:
            beams, reference = [normalize_answer(b) for b in beams], normalize_answer(reference)
        if first_word:
            beams = [b.split()[0] if b.split() else "" for b in beams]
        hit = (reference in beams[:1], reference in beams[:5])
        hits.append(hit)
        if types is not None:
            by_type.setdefault(types.get(key) or "unknown", []).append(hit)
    result: dict[str, Any] = _scores(hits)
    if types is not None:
        result["per_type"] = {name: _scores(h) for name, h in sorted(by_type.items())}
    return result


def qa_references(records: Iterable[VideoRecord]) -> tuple[dict[str, str], dict[str, str | None]]:
    """Answers and types keyed by question id, for `exact_match_accuracy`.

    A question without an id is keyed "<record id>#<index>".

    Returns:
        `(answers, types)`.

    Raises:
        ValueError: two questions share an id.
    """
    answers: dict[str, str] = {}
    types: dict[str, str | None] = {}
    for record in records:
        for i, qa in enumerate(record.qa):
            key = qa.id if qa.id is not None else f"{record.id}#{i}"
            if key in answers:
                raise ValueError(f"question id {key!r} appears twice")
            answers[key], types[key] = qa.answer, qa.type
    return answers, types


def label_references(records: Iterable[VideoRecord]) -> dict[str, str]:
    """Labels keyed by record id (records without a label are left out)."""
    return {r.id: r.label for r in records if r.label is not None}


def caption_references(records: Iterable[VideoRecord]) -> dict[str, list[str]]:
    """Reference captions keyed by record id (records without captions are left out)."""
    return {r.id: list(r.captions) for r in records if r.captions}


# ---------------------------------------------------------------------------------------------
# Captioning


def java_available() -> bool:
    """Whether a `java` executable is on PATH (PTBTokenizer and METEOR need one)."""
    return shutil.which("java") is not None


def simple_tokenize(text: str) -> str:
    """The tokenizer used without Java: lowercase, then keep runs of letters and digits
    separated by single spaces. Every other character separates tokens and is dropped, so
    "Don't stop at 3.5 km!" becomes "don t stop at 3 5 km" (PTBTokenizer: "do n't stop at 3.5
    km"); scores therefore differ a little from PTB-tokenised ones."""
    return " ".join(_SIMPLE_TOKEN.findall(text.lower()))


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Stanford PTBTokenizer as pycocoevalcap runs it (lowercased, one sentence per line,
    COCO's punctuation tokens removed), fed through stdin rather than a temporary file in the
    package folder, so it also works from a read-only installation.

    Raises:
        RuntimeError: java fails or its output does not line up with the input.
    """
    from pycocoevalcap.tokenizer import ptbtokenizer

    if not sentences:
        return []
    jar = Path(ptbtokenizer.__file__).parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    text = "\n".join(_LINE_BREAKS.sub(" ", s) for s in sentences)  # one sentence per line, always
    command = ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer"]
    command += ["-preserveLines", "-lowerCase", "-encoding", "utf-8"]
    done = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"PTBTokenizer failed ({done.stderr.decode(errors='replace').strip()[-300:]})")
    lines = done.stdout.decode("utf-8").split("\n")
    if lines and lines[-1] == "" and len(lines) > len(sentences):
        lines.pop()
    if len(lines) > len(sentences):
        raise RuntimeError(f"PTBTokenizer returned {len(lines)} lines for {len(sentences)} sentences")
    lines += [""] * (len(sentences) - len(lines))  # trailing empty sentences may produce no line
    punctuation = set(ptbtokenizer.PUNCTUATIONS)
    return [" ".join(w for w in line.rstrip().split(" ") if w not in punctuation) for line in lines]


def _check_captions(predictions: Mapping[str, Any], references: Mapping[str, Any]) -> None:
    _check_ids(predictions, references, "videos")
    for key, refs in references.items():
        if isinstance(refs, str) or not isinstance(refs, Sequence) or not refs or not all(isinstance(r, str) for r in refs):
            raise ValueError(f"references for {key!r} must be a non-empty list of captions")
        if not isinstance(predictions[key], str):
            raise ValueError(f"prediction for {key!r} must be one caption (a string), got {predictions[key]!r}")


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    scorer = Meteor()
    try:
        score, _ = scorer.compute_score(gts, res)
    finally:  # end the java process now rather than at garbage collection
        with scorer.lock:
            process = scorer.meteor_p
            process.stdin.close()
            process.kill()
            process.wait()
            process.stdout.close()
            process.stderr.close()
    return float(score)


def caption_metrics(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    tokenizer: str = "auto",
    meteor: bool | None = None,
) -> dict[str, Any]:
    """COCO caption metrics (corpus-level) of one generated caption per video.

    Args:
        predictions: id -> the generated caption.
        references: id -> the reference captions (at least one).
        tokenizer: "ptb" (Stanford PTBTokenizer, as COCO evaluation; needs java), "simple"
            (`simple_tokenize`, no Java) or "auto" (ptb when java is on PATH).
        meteor: compute METEOR (needs java): None computes it when java is on PATH; True
            requires it; False skips it.

    Returns:
        `{"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR" (when computed), "ROUGE_L", "CIDEr"}`
        as percentages (pycocoevalcap's values x 100), plus `"count"` (videos scored) and
        `"tokenizer"` ("ptb" or "simple"). Without java in "auto" mode a RuntimeWarning says
        that METEOR was skipped and the simple tokenizer used.

    Raises:
        ValueError: no references, a missing or extra prediction, a malformed input, or
            "ptb"/`meteor=True` without java.
        ModuleNotFoundError: pycocoevalcap is not installed.
        RuntimeError: the Java tools fail.
    """
    if tokenizer not in ("auto", "ptb", "simple"):
        raise ValueError(f"tokenizer must be 'auto', 'ptb' or 'simple', not {tokenizer!r}")
    _check_captions(predictions, references)
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
    except ImportError:
        raise ModuleNotFoundError("caption metrics need pycocoevalcap: pip install pycocoevalcap") from None
    java = java_available()
    if not java and (tokenizer == "ptb" or meteor):
        raise ValueError("PTBTokenizer and METEOR need java on PATH (or use tokenizer='simple', meteor=False)")
    if not java and meteor is None:
        fallback = ", captions tokenized with the simple tokenizer" if tokenizer == "auto" else ""
        warnings.warn(f"java not found on PATH: METEOR skipped{fallback}", RuntimeWarning, stacklevel=2)
    use_ptb = tokenizer == "ptb" or (tokenizer == "auto" and java)
    use_meteor = meteor if meteor is not None else java

    ids = list(references)
    sentences = [r for key in ids for r in references[key]] + [predictions[key] for key in ids]
    tokens = ptb_tokenize(sentences) if use_ptb else [simple_tokenize(s) for s in sentences]
    gts: dict[str, list[str]] = {}
    position = 0
    for key in ids:
        gts[key] = tokens[position : position + len(references[key])]
        position += len(references[key])
    res = {key: [tokens[position + i]] for i, key in enumerate(ids)}

    with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its statistics
        bleu, _ = Bleu(4).compute_score(gts, res)
    result: dict[str, Any] = {f"Bleu_{n + 1}": 100.0 * float(bleu[n]) for n in range(4)}
    if use_meteor:
        result["METEOR"] = 100.0 * _meteor(gts, res)
    result["ROUGE_L"] = 100.0 * float(Rouge().compute_score(gts, res)[0])
    result["CIDEr"] = 100.0 * float(Cider().compute_score(gts, res)[0])
    result["count"] = len(ids)
    result["tokenizer"] = "ptb" if use_ptb else "simple"
    return result
