"""Wording of one level's findings: labels in, truthful sentences out.

Contract of ``render_level``: every label that is not the first ("nothing") label of its
pathology is stated, possibly only through another finding's sentence ("disc extrusion
severely narrowing the spinal canal" states the canal severity). A first label may be
stated as a negative ("No canal stenosis.") or left out; annotators label an unmentioned
finding of a described level as normal/absent. Hedged wording follows one annotation
convention: "X to Y" is labelled Y; "minimal", "slight", "borderline mild" and "possible
mild" are labelled mild. No sentence names a level; the caller adds the level name.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Voice:
    """A report author's habits, fixed per report so that a report reads consistently."""

    abbreviate: float  # probability of NFN, SCS, DDD, DOC, HIZ where one exists
    negatives: float  # probability of writing out a normal finding ("No canal stenosis.")
    hedge: float  # probability of hedging a severity ("mild to moderate")
    implied: float  # probability of stating the canal only through the disc sentence
    shuffle: float  # probability of shuffling a level's sentence order


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def lower_first(text: str) -> str:
    """Lower-case the first letter unless the first word is an abbreviation (SCS, T2, C5)."""
    word = text.split(" ", 1)[0]
    if len(word) > 1 and (word[1].isupper() or word[1].isdigit()):
        return text
    return text[:1].lower() + text[1:]


class _Pen:
    """A random source with the author's voice: small helpers the phrase banks share."""

    def __init__(self, rng: random.Random, voice: Voice):
        self.rng = rng
        self.voice = voice

    def pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def abbrev(self) -> bool:
        return self.chance(self.voice.abbreviate)

    def adjective(self, severity: str) -> str:
        if self.chance(self.voice.hedge):
            hedged = {
                "mild": ["minimal", "possible mild", "borderline mild", "slight"],
                "moderate": ["mild to moderate", "mild-to-moderate"],
                "severe": ["moderate to severe", "moderate-to-severe"],
            }
            return self.pick(hedged[severity])
        if severity == "severe" and self.chance(0.2):
            return "marked"
        return severity

    def adverb(self, severity: str) -> str:
        if self.chance(self.voice.hedge):
            return {"mild": "minimally", "moderate": "mildly to moderately", "severe": "moderately to severely"}[
                severity
            ]
        return {"mild": "mildly", "moderate": "moderately", "severe": self.pick(["severely", "markedly"])}[severity]


def _disc_phrase(pen: _Pen, region: str, disc: str) -> str:
    if disc == "bulge":
        size = pen.pick(["mild", "small", "broad-based", "diffuse", "minimal", "circumferential"])
        if region == "cervical" and pen.chance(0.3):
            return "DOC (disc osteophyte complex)" if pen.abbrev() else f"{size} disc osteophyte complex"
        if pen.abbrev():
            return f"DDD with {size} disc bulge"
        return f"{size} disc bulge"
    where = pen.pick(["central", "left paracentral", "right paracentral", "broad-based", "small central", "foraminal"])
    if disc == "protrusion":
        return pen.pick([f"{where} disc protrusion", f"{where} disc herniation (protrusion)", f"{where} protrusion"])
    return pen.pick(
        [
            f"{where} disc extrusion",
            f"large {where} disc extrusion",
            f"{where} disc extrusion with caudal migration",
            f"{where} disc herniation (extrusion)",
        ]
    )


def _canal(pen: _Pen, region: str, severity: str) -> str:
    if severity == "normal":
        if pen.abbrev():
            return "No SCS."
        return pen.pick(
            ["No spinal canal stenosis.", "No significant canal stenosis.", "The spinal canal is patent.",
             "Central canal is patent.", "No central stenosis."]
        )  # fmt: skip
    a = pen.adjective(severity)
    if pen.abbrev():
        return f"{cap(a)} SCS."
    noun = pen.pick(["spinal canal stenosis", "central canal stenosis", "canal stenosis", "central stenosis"])
    extra = ""
    if region == "cervical" and severity == "severe" and pen.chance(0.5):
        extra = pen.pick([" with cord compression", " with effacement of the CSF around the cord"])
    return pen.pick(
        [
            f"{cap(a)} {noun}{extra}.",
            f"There is {a} {noun}{extra}.",
            f"{cap(a)} narrowing of the {pen.pick(['spinal canal', 'central canal', 'thecal sac'])}.",
            f"The {pen.pick(['spinal canal', 'central canal'])} is {pen.adverb(severity)} narrowed.",
        ]
    )


def _disc_and_canal(pen: _Pen, region: str, disc: str, canal: str) -> list[str]:
    out: list[str] = []
    if disc != "none" and canal != "normal" and pen.chance(pen.voice.implied):
        # The canal's severity is stated only through the disc sentence.
        canal_noun = pen.pick(["spinal canal", "central canal", "canal"])
        verb = pen.pick(
            [f"{pen.adverb(canal)} narrowing the {canal_noun}", f"which {pen.adverb(canal)} narrows the {canal_noun}"]
        )
        return [f"{cap(_disc_phrase(pen, region, disc))} {verb}."]
    if disc != "none" and canal != "normal" and pen.chance(0.25):
        return [f"{cap(_disc_phrase(pen, region, disc))} resulting in {pen.adjective(canal)} canal stenosis."]
    if disc != "none":
        out.append(f"{cap(_disc_phrase(pen, region, disc))}.")
    elif pen.chance(pen.voice.negatives):
        out.append(pen.pick(["No disc bulge or herniation.", "No disc herniation.", "No disc protrusion."]))
    if canal != "normal" or pen.chance(pen.voice.negatives):
        out.append(_canal(pen, region, canal))
    return out


#: Corpus 2: the canal grade as a disc's effect on the thecal sac and cord (cauda equina), with
#: neither a canal word nor a grade word, as a clause after the disc phrase.
DISC_EFFECT: dict[str, dict[str, list[str]]] = {
    "cervical": {
        "mild": ["effacing the ventral CSF", "indenting the ventral subarachnoid space",
                 "which contacts the ventral dura"],
        "moderate": ["abutting the ventral cord", "contacting the ventral cord", "which abuts the cord"],
        "severe": ["compressing the cord", "deforming the cord", "flattening the cord", "which compresses the cord"],
    },
    "lumbar": {
        "mild": ["effacing the ventral epidural fat", "indenting the ventral dural sac",
                 "which contacts the ventral dura"],
        "moderate": ["crowding the cauda equina", "which crowds the nerve roots of the cauda equina",
                     "effacing the fluid around the nerve roots"],
        "severe": ["compressing the cauda equina", "with clumping of the cauda equina nerve roots",
                   "with redundant nerve roots above the level"],
    },
}  # fmt: skip
#: Disc bulge sizes that read like a grade; left out of a through-the-disc sentence.
_GRADE_LIKE_SIZES = ("mild", "minimal")


def through_disc_sentence(pen: _Pen, region: str, disc: str, canal: str) -> str:
    """One sentence stating the disc and, only through its effect, the canal grade."""
    phrase = _disc_phrase(pen, region, disc)
    while set(phrase.split()) & set(_GRADE_LIKE_SIZES):  # "mild disc bulge", "DDD with minimal disc bulge"
        phrase = _disc_phrase(pen, region, disc)
    return f"{cap(phrase)} {pen.pick(DISC_EFFECT[region][canal])}."


def _foramina(pen: _Pen, region: str, left: str, right: str) -> list[str]:
    noun = "NFN" if pen.abbrev() else pen.pick(
        ["neural foraminal narrowing", "foraminal stenosis", "foraminal narrowing", "neuroforaminal stenosis"]
    )  # fmt: skip
    if left == right == "normal":
        if not pen.chance(pen.voice.negatives):
            return []
        if noun == "NFN":
            return ["No NFN."]
        return [pen.pick(["Neural foramina are patent.", "No foraminal narrowing.", "No neural foraminal stenosis.",
                          "The foramina are widely patent."])]  # fmt: skip
    if left == right:
        a = pen.adjective(left)
        text = pen.pick([f"{a} bilateral {noun}", f"bilateral {a} {noun}"])
        if noun != "NFN" and pen.chance(0.2):
            text = f"{a} narrowing of both neural foramina"
    elif "normal" in (left, right):
        side, sev = ("left", left) if right == "normal" else ("right", right)
        other = "right" if side == "left" else "left"
        text = f"{pen.adjective(sev)} {side} {noun}"
        if pen.chance(pen.voice.negatives):
            tail = pen.pick([f"The {other} foramen is patent.", f"No {other} foraminal narrowing."])
            return [_with_cause(pen, region, text), tail]
    else:
        a_left, a_right = pen.adjective(left), pen.adjective(right)
        if noun != "NFN" and pen.chance(0.25):
            return [f"{cap(noun)} is {a_left} on the left and {a_right} on the right."]
        text = pen.pick([f"{a_left} left and {a_right} right {noun}", f"{a_right} right and {a_left} left {noun}"])
    return [_with_cause(pen, region, text)]


def _with_cause(pen: _Pen, region: str, finding: str) -> str:
    if region == "cervical" and pen.chance(0.25):
        return f"{pen.pick(['Uncovertebral hypertrophy results in', 'Uncovertebral spurring causes'])} {finding}."
    return f"{cap(finding)}."


def _graded(pen: _Pen, severity: str, positive: list[str], negative: list[str]) -> list[str]:
    """One sentence for a graded finding: a template with {a} when abnormal, a negative maybe."""
    if severity == "normal":
        return [pen.pick(negative)] if pen.chance(pen.voice.negatives / 2) else []
    return [cap(pen.pick(positive).format(a=pen.adjective(severity), side=pen.pick(["left", "right"])))]


def _binary(pen: _Pen, present: bool, positive: list[str], negative: list[str]) -> list[str]:
    if present:
        return [pen.pick(positive)]
    return [pen.pick(negative)] if negative and pen.chance(pen.voice.negatives / 3) else []


def _facet(pen: _Pen, severity: str) -> list[str]:
    return _graded(
        pen, severity,
        ["{a} facet arthropathy.", "{a} bilateral facet hypertrophy.", "{a} facet arthrosis.",
         "{a} degenerative facet changes.", "Facet arthropathy is {a}."],
        ["Facets are unremarkable.", "No facet arthropathy.", "Facet joints are normal."],
    )  # fmt: skip


def _subarticular(pen: _Pen, severity: str) -> list[str]:
    return _graded(
        pen, severity,
        ["{a} bilateral subarticular recess narrowing.", "{a} lateral recess stenosis.",
         "{a} narrowing of the {side} lateral recess.", "{a} {side} subarticular stenosis."],
        ["Lateral recesses are patent.", "No subarticular stenosis."],
    )  # fmt: skip


def _cord(pen: _Pen, present: str) -> list[str]:
    return _binary(
        pen, present == "present",
        ["T2 hyperintense signal within the cord, compatible with myelomalacia.",
         "Abnormal intramedullary T2 signal at this level.", "Focal cord signal abnormality.",
         "Associated cord edema.", "Increased T2 signal in the cord, concerning for myelopathy."],
        ["No cord signal abnormality.", "Cord signal is normal.", "No abnormal cord signal."],
    )  # fmt: skip


def _fissure(pen: _Pen, present: str) -> list[str]:
    positive = ["Posterior annular fissure.", "Small annular tear.", "Annular fissure (high-intensity zone).",
                "There is a posterior annular fissure."]  # fmt: skip
    if pen.abbrev():
        positive = ["Posterior HIZ (annular fissure).", "Annular fissure/HIZ."]
    return _binary(pen, present == "present", positive, ["No annular fissure."])


def _hemangioma(pen: _Pen, present: str, level: str) -> list[str]:
    vertebra = pen.pick(level.split("-"))
    return _binary(
        pen, present == "present",
        [f"Small hemangioma in the {vertebra} vertebral body.", f"Incidental {vertebra} vertebral body hemangioma.",
         f"Typical hemangioma within the {vertebra} vertebral body.",
         f"A {pen.pick(['tiny', 'small', '7 mm'])} hemangioma is noted in the {vertebra} vertebral body."],
        [],
    )  # fmt: skip


def normal_level(rng: random.Random, voice: Voice) -> list[str]:
    """Sentences for a level whose every label is the first one."""
    pen = _Pen(rng, voice)
    if pen.abbrev():
        return [pen.pick(["No DDD, SCS or NFN.", "No SCS or NFN."])]
    options: list[list[str]] = [
        ["Unremarkable."],
        ["Normal."],
        ["No significant abnormality."],
        ["No disc bulge, canal stenosis or foraminal narrowing."],
        ["No disc bulge.", "No canal or foraminal stenosis."],
        ["Negative."],
        ["No significant disc bulge or stenosis."],
    ]
    return list(rng.choice(options))


def render_level(
    rng: random.Random,
    region: str,
    level: str,
    labels: Mapping[str, str],
    voice: Voice,
    through_disc: bool = False,
) -> list[str]:
    """Truthful sentences (without the level name) for one level's clean labels. With
    ``through_disc`` (a disc that narrows the canal), the canal grade is stated only as the
    disc's effect (corpus 2, ``through_disc_sentence``)."""
    pen = _Pen(rng, voice)
    disc, canal = labels["disc"], labels["canal_stenosis"]
    parts: list[Callable[[], list[str]]] = [
        lambda: (
            [through_disc_sentence(pen, region, disc, canal)]
            if through_disc
            else _disc_and_canal(pen, region, disc, canal)
        ),
        lambda: _foramina(pen, region, labels["left_foraminal"], labels["right_foraminal"]),
        lambda: _facet(pen, labels["facet_arthropathy"]),
    ]
    if region == "lumbar":
        parts.insert(2, lambda: _subarticular(pen, labels["subarticular_stenosis"]))
    else:
        parts.append(lambda: _cord(pen, labels["cord_signal"]))
    parts.append(lambda: _fissure(pen, labels["annular_fissure"]))
    parts.append(lambda: _hemangioma(pen, labels["hemangioma"], level))
    sentences = [s for part in parts for s in part()]
    if not sentences:  # only possible when every label is the first one
        sentences = normal_level(rng, voice)
    if pen.chance(voice.shuffle):
        rng.shuffle(sentences)
    return sentences
