"""Rebuild harness/assets/tiny/vocab.txt, the WordPiece vocabulary of the `tiny` preset.

A 4,000-token vocabulary keeps the tiny model near one million parameters while English
and radiology text tokenize into sensible pieces. Trained on the GLUE training sentences
in ../shared/data/glue and, when the spine plugin is installed, a synthetic spine corpus.

    python scripts/build_tiny_vocab.py [GLUE_DIR]
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from pathlib import Path

from tokenizers import BertWordPieceTokenizer

ROOT = Path(__file__).resolve().parents[1]
VOCAB_SIZE = 4000


def glue_sentences(glue: Path) -> Iterator[str]:
    for path in sorted(glue.glob("*/train.tsv")):
        with path.open(newline="") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                yield from (cell for cell in row if len(cell.split()) > 3)


def spine_sentences() -> Iterator[str]:
    try:
        from harness_spine.generator import generate_corpus  # type: ignore[import-not-found]
    except ImportError:
        return
    for report in generate_corpus(reports=600, region="both", seed=12345):
        yield report.text


def main() -> None:
    glue = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "glue"
    texts = [*glue_sentences(glue), *spine_sentences()]
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(texts, vocab_size=VOCAB_SIZE, min_frequency=2)
    out = ROOT / "harness" / "assets"
    tokenizer.save_model(str(out), "tiny")
    (out / "tiny-vocab.txt").rename(out / "tiny" / "vocab.txt")
    print(f"{len(texts)} texts -> {tokenizer.get_vocab_size()} tokens in {out / 'tiny' / 'vocab.txt'}")


if __name__ == "__main__":
    main()
