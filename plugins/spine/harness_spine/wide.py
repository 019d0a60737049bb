"""Corpus 3's wording of one level: the variety real reports show, labels in, truthful text out.

Corpus 1 and 2 (``render.py``) write every finding as a full sentence naming its pathology and
one of four grade words. Radiologists also write tersely ("C5-6: DOC, mod CCS, sev R NFN."),
abbreviate (CCS, NFN, NF, DOC, DB, SA, B/L, R/L, "w/", "+"), grade beyond four words
("mild-moderate", "moderate to severe", "high-grade", "marked"), give the effect on the
thecal sac, cord or nerve roots instead of a grade, name the anatomy instead of the pathology
(the recess for subarticular stenosis, "the left foramen is narrowed"), let a cause stand for
a finding ("facet hypertrophy narrows the right foramen"), order the sides either way, and
spread one level over several sentences. ``render_level`` writes one level so.

Annotation conventions (what a phrase is labelled; the same as ``render.py``'s where both
write it):

* A range ("mild to moderate", "moderate-severe", "mild/moderate") is labelled its upper
  grade; minimal, slight, minor, "trace to mild" are mild; marked, high-grade, advanced,
  critical are severe.
* Canal: thecal sac indented or ventral CSF (epidural fat) effaced is mild; cord contacted or
  abutted, cauda equina crowded is moderate; cord flattened, deformed or compressed, cauda
  equina compressed or roots clumped is severe.
* A foramen or lateral recess narrowed without root contact is mild; the root contacted or
  displaced is moderate; the root compressed or impinged is severe.
* A disc osteophyte complex (bar) is a bulge; a migrated or extruded fragment is an
  extrusion. Facet hypertrophy without a grade, also when named as a cause, is mild facet
  arthropathy; uncovertebral spurring alone is not facet arthropathy.
* Subarticular stenosis is one label, the worse side.

No sentence names a level; the caller adds the level name. Every grade word or effect refers
to exactly one finding, so a level's snippet states each of its labels unambiguously.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass

SIDES = ("left", "right")
_ORDER = ("normal", "mild", "moderate", "severe")


@dataclass(frozen=True)
class WideVoice:
    """One author's habits, fixed per report (see ``voice``)."""

    terse: bool  # telegraphic: a level is one line of comma-joined clauses, abbreviations likely
    abbreviate: float  # probability of an abbreviation where one exists
    effects: float  # probability of giving a grade as its effect on the sac, cord or roots
    anatomy: float  # probability of naming the anatomy ("the left foramen is narrowed")
    causes: float  # probability of letting facet hypertrophy stand as the cause of a narrowing
    spread: float  # probability of spreading a finding's statement over two sentences
    negatives: float  # probability of writing out a normal finding
    ranges: float  # probability of a grade range or a grade synonym instead of the plain word


def voice(rng: random.Random) -> WideVoice:
    """An author's habits, drawn once per report: 30 % write tersely (and then abbreviate most
    words); the other knobs vary per author so that corpus 3 mixes plain and dense styles."""
    terse = rng.random() < 0.3
    return WideVoice(
        terse=terse,
        abbreviate=rng.choice([0.8, 0.95]) if terse else rng.choice([0.0, 0.1, 0.4]),
        effects=rng.choice([0.0, 0.25, 0.5]),
        anatomy=rng.choice([0.1, 0.3, 0.5]),
        causes=rng.choice([0.0, 0.3, 0.6]),
        spread=0.0 if terse else rng.choice([0.0, 0.3, 0.6]),
        negatives=rng.uniform(0.1, 0.8),
        ranges=rng.choice([0.1, 0.3]),
    )


class Pen:
    """A random source with an author's voice; small word choices shared by the phrase banks."""

    def __init__(self, rng: random.Random, v: WideVoice):
        self.rng = rng
        self.v = v

    def pick(self, options: list[str] | tuple[str, ...]) -> str:
        return self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def abbrev(self) -> bool:
        return self.chance(self.v.abbreviate)

    def grade(self, severity: str) -> str:
        """An adjective for a grade: plain, abbreviated, a synonym or a range ending in it."""
        if self.chance(self.v.ranges):
            return self.pick(
                {
                    "mild": ["minimal", "slight", "minimal to mild", "minimal-mild", "trace to mild", "minor"],
                    "moderate": [
                        "mild to moderate",
                        "mild-moderate",
                        "mild/moderate",
                        "mild-to-moderate",
                        "mild-mod",
                        "mild to mod",
                    ],
                    "severe": [
                        "moderate to severe",
                        "moderate-severe",
                        "mod-severe",
                        "moderate/severe",
                        "mod-sev",
                        "high-grade",
                        "marked",
                        "moderate to marked",
                        "advanced",
                    ],
                }[severity]
            )
        if self.abbrev():
            return self.pick(
                {"mild": ["mild", "mild", "mld"], "moderate": ["mod", "mod"], "severe": ["sev", "sev"]}[severity]
            )
        return severity

    def adverb(self, severity: str) -> str:
        if self.chance(self.v.ranges):
            return self.pick(
                {
                    "mild": ["minimally", "slightly", "minimally to mildly"],
                    "moderate": ["mildly to moderately", "mild-moderately"],
                    "severe": ["markedly", "moderately to severely", "critically"],
                }[severity]
            )
        return {"mild": "mildly", "moderate": "moderately", "severe": "severely"}[severity]

    def side(self, side: str) -> str:
        if self.abbrev():
            return self.pick({"left": ["L", "Lt", "L"], "right": ["R", "Rt", "R"]}[side])
        return side

    def both(self) -> str:
        return (
            self.pick(["B/L", "bilat", "B/L"]) if self.abbrev() else self.pick(["bilateral", "bilateral", "both-sided"])
        )


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def exiting_root(region: str, level: str) -> str:
    """The root exiting the foramen at ``level``: C5-C6 -> C6, C7-T1 -> C8; L4-L5 -> L4."""
    upper, lower = level.split("-")
    if region == "cervical":
        return "C8" if lower == "T1" else lower
    return upper


def traversing_root(level: str) -> str:
    """The lumbar root traversing the lateral recess at ``level``: L4-L5 -> L5, L5-S1 -> S1."""
    return level.split("-")[1]


# --- disc -----------------------------------------------------------------------------------


def disc_noun(pen: Pen, region: str, disc: str, located: bool = True) -> str:
    """A noun phrase for a disc label other than "none" (it states that label and nothing else);
    without ``located``, a herniation gets no position (an impression restating the findings must
    not place it elsewhere: the position is not a label, but a "right foraminal" disc beside a
    normal right foramen misleads)."""
    if disc == "bulge":
        if pen.abbrev():
            return pen.pick(["DB", "disc bulge", "bulge"] + (["DOC"] * 2 if region == "cervical" else []))
        options = [
            "disc bulge",
            "broad-based disc bulge",
            "diffuse disc bulge",
            "bulging disc",
            "annular disc bulge",
            "circumferential bulge",
            "shallow disc bulge",
            "disc bulging",
        ]
        if region == "cervical":
            options += [
                "disc osteophyte complex",
                "disc-osteophyte complex",
                "posterior disc osteophyte bar",
                "spondylotic disc-osteophyte ridge",
            ]
        return pen.pick(options)
    places = ["central", "left paracentral", "right paracentral", "left foraminal", "right foraminal"]
    places += ["posterocentral", "broad", "focal central"]
    if region == "lumbar":
        places += ["left subarticular", "right subarticular"]  # a lumbar term
    where = pen.pick(places) if located else ""
    if pen.abbrev():
        where = where.replace("left", pen.side("left")).replace("right", pen.side("right"))
    if disc == "protrusion":
        return _tidy(
            pen.pick(
                [
                    f"{where} protrusion",
                    f"{where} disc protrusion",
                    f"protruded disc ({where})",
                    f"{where} HNP (protrusion)",
                    f"{where} contained disc herniation (protrusion)",
                ]
            )
        )
    return _tidy(
        pen.pick(
            [
                f"{where} extrusion",
                f"{where} disc extrusion",
                f"extruded {where} disc",
                f"{where} extrusion w/ caudal migration"
                if pen.abbrev()
                else f"{where} extrusion with a migrated fragment",
                f"sequestered {where} disc fragment",
                f"{where} extruded fragment",
                f"{where} herniation with cranial extension of an extruded fragment",
            ]
        )
    )


def _tidy(phrase: str) -> str:
    """One space between words, none at the ends, no empty brackets (a phrase without a position)."""
    return " ".join(phrase.replace("()", "").replace(" ( )", "").split())


# --- canal ----------------------------------------------------------------------------------

CANAL_EFFECT: dict[str, dict[str, list[str]]] = {
    "cervical": {
        "mild": [
            "effacing the ventral CSF",
            "indenting the thecal sac",
            "indenting the ventral thecal sac",
            "with effacement of the anterior CSF but no cord contact",
        ],
        "moderate": [
            "abutting the cord",
            "contacting the ventral cord",
            "touching the cord without deforming it",
            "with cord contact",
        ],
        "severe": [
            "compressing the cord",
            "flattening the cord",
            "deforming the cord",
            "with cord compression",
            "with cord flattening",
        ],
    },
    "lumbar": {
        "mild": [
            "indenting the thecal sac",
            "effacing the ventral epidural fat",
            "indenting the ventral dural sac",
            "with slight effacement of the thecal sac",
        ],
        "moderate": [
            "crowding the cauda equina",
            "crowding the nerve roots of the cauda equina",
            "with crowding of the cauda equina",
        ],
        "severe": [
            "compressing the cauda equina",
            "with clumping of the cauda equina roots",
            "with redundant roots above the level",
            "compressing the thecal sac to a trefoil",
            "with near-complete effacement of the CSF around the roots",
        ],
    },
}


def canal_positive(pen: Pen, region: str, severity: str, np: bool = True) -> str:
    """A phrase for an abnormal canal grade (no leading capital, no full stop): a noun phrase
    (to follow "with", "causing", a cause), or with ``np=False`` possibly a whole clause."""
    if pen.chance(pen.v.effects):
        effect = pen.pick(CANAL_EFFECT[region][severity])
        return pen.pick(
            [f"canal narrowing {effect}", f"narrowed canal {effect}"]
            + ([] if np else [f"the canal is narrowed, {effect}"])
        )
    g = pen.grade(severity)
    if pen.abbrev():
        return pen.pick([f"{g} CCS", f"{g} SCS", f"{g} central stenosis"] + ([] if np else [f"CCS {g}", f"canal: {g}"]))
    if pen.chance(pen.v.anatomy):
        where = pen.pick(["spinal canal", "thecal sac", "central canal"])
        options = [
            f"{pen.adverb(severity)} narrowed {pen.pick(['thecal sac', 'central canal', 'canal'])}",
            f"{g} narrowing of the {where}",
        ]
        if not np:
            options += [
                f"the {pen.pick(['spinal', 'central'])} canal is {pen.adverb(severity)} narrowed",
                f"the canal is narrowed, {g}",
            ]
        return pen.pick(options)
    noun = pen.pick(
        [
            "spinal canal stenosis",
            "central canal stenosis",
            "canal stenosis",
            "central stenosis",
            "spinal stenosis",
            "stenosis of the central canal",
        ]
    )
    return pen.pick([f"{g} {noun}", f"{noun}, {g}"] + ([] if np else [f"{noun} is {g}"]))


def canal_negative(pen: Pen) -> str:
    if pen.abbrev():
        return pen.pick(["no CCS", "CC patent", "canal ok", "no SCS", "canal nl"])
    return pen.pick(
        [
            "no canal stenosis",
            "the canal is patent",
            "central canal patent",
            "canal is adequate",
            "no central stenosis",
            "canal capacious",
            "no spinal stenosis",
        ]
    )


def canal_effect(pen: Pen, region: str, severity: str) -> str:
    """The canal grade as the effect of the disc (a participle phrase to follow a disc noun)."""
    return pen.pick(CANAL_EFFECT[region][severity])


# --- foramina -------------------------------------------------------------------------------


def _foramen_noun(pen: Pen) -> str:
    if pen.abbrev():
        return pen.pick(["NFN", "NF narrowing", "NF stenosis", "foraminal stenosis"])
    return pen.pick(
        [
            "neural foraminal narrowing",
            "foraminal stenosis",
            "foraminal narrowing",
            "neuroforaminal narrowing",
            "neural foraminal stenosis",
            "exit foraminal narrowing",
        ]
    )


def _root_effect(pen: Pen, region: str, level: str, severity: str, side: str) -> str:
    root = exiting_root(region, level)
    named = pen.pick([f"the exiting {side} {root} root", f"the exiting {root} nerve root", f"the {side} {root} root"])
    return pen.pick(
        {
            "mild": [f"without contact of {named}", f"without impingement of {named}", "without nerve root contact"],
            "moderate": [f"contacting {named}", f"abutting {named}", f"displacing {named}"],
            "severe": [f"compressing {named}", f"impinging on {named}", f"with compression of {named}"],
        }[severity]
    )


def _side_part(pen: Pen, region: str, level: str, side: str, sev: str, np: bool) -> str:
    """One foramen's grade: a noun phrase, or with ``np=False`` possibly a clause."""
    if pen.chance(pen.v.effects):
        nf = "NF" if pen.abbrev() else "foraminal"
        return f"{pen.side(side)} {nf} narrowing {_root_effect(pen, region, level, sev, side)}"
    if pen.chance(pen.v.anatomy):
        options = [f"{pen.adverb(sev)} narrowed {side} foramen", f"{pen.grade(sev)} narrowing of the {side} foramen"]
        if not np:
            options += [
                f"the {side} foramen is {pen.adverb(sev)} narrowed",
                f"{pen.side(side)} NF: {pen.grade(sev)}" if pen.abbrev() else f"{side} foramen: {pen.grade(sev)}",
            ]
        return pen.pick(options)
    noun = _foramen_noun(pen)
    return pen.pick(
        [f"{pen.grade(sev)} {pen.side(side)} {noun}", f"{pen.side(side)} {pen.grade(sev)} {noun}"]
        + ([] if np else [f"{pen.side(side)} {noun} {pen.grade(sev)}"])
    )


def foramina(pen: Pen, region: str, level: str, left: str, right: str, cause: str | None) -> list[str]:
    """Clauses for both foramina; ``cause`` (a noun phrase) names what narrows them, or None."""
    if left == right == "normal":
        if not pen.chance(pen.v.negatives):
            return []
        if pen.abbrev():
            return [pen.pick(["NFs patent", "no NFN", "foramina ok", "NF ok B/L", "no foraminal stenosis"])]
        return [
            pen.pick(
                [
                    "the foramina are patent",
                    "neural foramina widely patent",
                    "no foraminal narrowing",
                    "both foramina are clear",
                    "foramina open",
                ]
            )
        ]
    verb = pen.pick(["causing", "with", "resulting in"]) if cause else ""
    if left == right:
        sev = left
        root = exiting_root(region, level)
        if pen.chance(pen.v.effects):
            text = pen.pick(
                {
                    "mild": [f"narrowing of both foramina without contact of the exiting {root} roots"],
                    "moderate": [f"{pen.both()} foraminal narrowing contacting the exiting {root} roots"],
                    "severe": [f"{pen.both()} foraminal narrowing compressing the exiting {root} roots"],
                }[sev]
            )
        elif pen.chance(pen.v.anatomy):
            options = [f"{pen.adverb(sev)} narrowed neural foramina", f"{pen.grade(sev)} narrowing of both foramina"]
            if not cause:
                options += [
                    f"both foramina are {pen.adverb(sev)} narrowed",
                    f"the foramina are narrowed, {pen.grade(sev)} {pen.both()}",
                ]
            text = pen.pick(options)
        else:
            noun = _foramen_noun(pen)
            options = [
                f"{pen.grade(sev)} {pen.both()} {noun}",
                f"{pen.both()} {pen.grade(sev)} {noun}",
                f"{pen.grade(sev)} {noun} bilaterally",
            ]
            if not cause:
                options.append(f"{noun}: {pen.grade(sev)} {pen.both()}")
            text = pen.pick(options)
        return [f"{cause} {verb} {text}" if cause else text]
    # the sides differ: every order, every form
    sides = [("left", left), ("right", right)]
    if pen.chance(0.5):
        sides.reverse()
    abnormal = [(s, v) for s, v in sides if v != "normal"]
    if len(abnormal) == 2 and pen.chance(0.35):
        (s1, v1), (s2, v2) = abnormal
        noun = _foramen_noun(pen)
        options = [
            f"{pen.grade(v1)} {pen.side(s1)} / {pen.grade(v2)} {pen.side(s2)} {noun}",
            f"{pen.both()} {noun}, {pen.grade(v1)} on the {s1} and {pen.grade(v2)} on the {s2}",
        ]
        if _ORDER.index(v1) > _ORDER.index(v2):
            worse, better = f"{pen.side(s1)} {pen.grade(v1)}", f"{pen.side(s2)} {pen.grade(v2)}"
            options.append(f"{noun} {pen.side(s1)} > {pen.side(s2)} ({worse}, {better})")
        if not cause:
            options.append(f"{noun}: {pen.side(s1)} {pen.grade(v1)}, {pen.side(s2)} {pen.grade(v2)}")
        text = pen.pick(options)
        return [f"{cause} {verb} {text}" if cause else text]
    parts = []
    for side, sev in sides:
        if sev == "normal":
            if pen.chance(pen.v.negatives) or (len(abnormal) == 1 and pen.chance(0.3)):
                other = (
                    f"{pen.side(side)} NF patent"
                    if pen.abbrev()
                    else pen.pick(
                        [f"the {side} foramen is clear", f"no {side} foraminal narrowing", f"{side} foramen patent"]
                    )
                )
                parts.append(other)
            continue
        np = bool(cause) and not any(v != "normal" for s, v in sides[: sides.index((side, sev))])
        part = _side_part(pen, region, level, side, sev, np)
        parts.append(f"{cause} {verb} {part}" if np else part)
    return parts


def foramina_phrase(pen: Pen, left: str, right: str) -> str:
    """A noun phrase stating both foramina's grades (at least one abnormal), for an impression."""
    noun = _foramen_noun(pen)
    if left == right:
        return pen.pick([f"{pen.grade(left)} {pen.both()} {noun}", f"{pen.both()} {pen.grade(left)} {noun}"])
    if "normal" in (left, right):
        side, sev = ("left", left) if right == "normal" else ("right", right)
        return f"{pen.grade(sev)} {pen.side(side)} {noun}"
    sides = [("left", left), ("right", right)]
    if pen.chance(0.5):
        sides.reverse()
    (s1, v1), (s2, v2) = sides
    return f"{pen.grade(v1)} {pen.side(s1)} and {pen.grade(v2)} {pen.side(s2)} {noun}"


# --- the other pathologies ------------------------------------------------------------------


def subarticular(pen: Pen, level: str, severity: str) -> list[str]:
    if severity == "normal":
        if not pen.chance(pen.v.negatives / 2):
            return []
        return [
            pen.pick(["SA recesses patent", "no SA stenosis"])
            if pen.abbrev()
            else pen.pick(["the lateral recesses are patent", "no subarticular narrowing", "recesses clear"])
        ]
    side = pen.pick(SIDES)
    if pen.chance(pen.v.effects):
        root = traversing_root(level)
        effect = {
            "mild": [f"{side} lateral recess narrowed without contact of the traversing {root} root"],
            "moderate": [
                f"{side} lateral recess narrowing contacting the traversing {root} root",
                f"the descending {side} {root} root is displaced in the narrowed recess",
            ],
            "severe": [
                f"{side} subarticular narrowing compressing the traversing {root} root",
                f"the {side} lateral recess is effaced with compression of the descending {root} root",
            ],
        }
        return [pen.pick(effect[severity])]
    if pen.abbrev():
        return [
            pen.pick(
                [
                    f"{pen.grade(severity)} {pen.side(side)} SA stenosis",
                    f"SA narrowing {pen.grade(severity)} {pen.both()}",
                    f"{pen.grade(severity)} {pen.both()} SA narrowing",
                    f"LR: {pen.grade(severity)}",
                ]
            )
        ]
    if pen.chance(pen.v.anatomy):
        return [
            pen.pick(
                [
                    f"the {side} lateral recess is {pen.adverb(severity)} narrowed",
                    f"{pen.adverb(severity)} narrowed lateral recesses",
                    f"{pen.grade(severity)} narrowing of the {side} recess",
                    f"the subarticular zones are {pen.adverb(severity)} narrowed",
                ]
            )
        ]
    return [
        pen.pick(
            [
                f"{pen.grade(severity)} {side} subarticular stenosis",
                f"{pen.grade(severity)} lateral recess stenosis",
                f"{pen.grade(severity)} bilateral subarticular recess narrowing",
                f"subarticular stenosis, {pen.grade(severity)} on the {side}",
            ]
        )
    ]


def facet(pen: Pen, severity: str) -> list[str]:
    if severity == "normal":
        if not pen.chance(pen.v.negatives / 2):
            return []
        return [
            pen.pick(["facets ok", "facets nl"])
            if pen.abbrev()
            else pen.pick(["facets unremarkable", "no facet arthropathy"])
        ]
    if severity == "mild" and pen.chance(0.3):
        return [
            pen.pick(["facet hypertrophy", "hypertrophic facets", "facet hypertrophy bilaterally", "facet arthrosis"])
        ]
    g = pen.grade(severity)
    return [
        pen.pick(
            [
                f"{g} facet arthropathy",
                f"{g} facet hypertrophy",
                f"facet arthropathy, {g}",
                f"{g} facet OA",
                f"{g} {pen.both()} facet arthrosis",
                f"facets {pen.adverb(severity)} hypertrophied",
                f"{g} facet joint degeneration",
            ]
        )
    ]


def facet_as_cause(pen: Pen, severity: str) -> str:
    """Facet arthropathy named as the cause of a narrowing (a noun phrase)."""
    if severity == "mild":
        return pen.pick(
            ["facet hypertrophy", "facet hypertrophy and ligamentum flavum thickening", "hypertrophic facets"]
        )
    return pen.pick([f"{pen.grade(severity)} facet hypertrophy", f"{pen.grade(severity)} facet arthropathy"])


def cord(pen: Pen, present: str) -> list[str]:
    if present != "present":
        return (
            [pen.pick(["no cord signal change", "cord nl", "cord signal normal"])]
            if pen.chance(pen.v.negatives / 3)
            else []
        )
    if pen.abbrev():
        return [
            pen.pick(
                ["+ T2 cord signal", "T2 hyperintense cord signal", "cord signal change (myelomalacia)", "+ cord edema"]
            )
        ]
    return [
        pen.pick(
            [
                "intramedullary T2 hyperintensity",
                "T2 signal change within the cord, c/w myelomalacia",
                "abnormal cord signal at this level",
                "cord edema",
                "myelomalacia of the cord",
                "focal T2 bright signal in the cord consistent with compressive myelopathy",
            ]
        )
    ]


def fissure(pen: Pen, present: str) -> list[str]:
    if present != "present":
        return []
    return [
        pen.pick(
            [
                "annular fissure",
                "posterior annular tear",
                "HIZ (annular fissure)",
                "annular fissure/HIZ",
                "high-intensity zone in the posterior annulus",
            ]
        )
    ]


def hemangioma(pen: Pen, present: str, level: str) -> list[str]:
    if present != "present":
        return []
    vertebra = pen.pick(level.split("-"))
    return [
        pen.pick(
            [
                f"incidental {vertebra} hemangioma",
                f"{vertebra} vertebral body hemangioma",
                f"small typical hemangioma in {vertebra}",
            ]
        )
    ]


# --- a level ------------------------------------------------------------------------------


def normal_verdict(pen: Pen, prose: bool = False) -> str:
    """One sentence for a level whose every label is normal: often a one-word verdict, unless prose."""
    if pen.v.terse or (not prose and pen.chance(0.4)):
        return pen.pick(["neg.", "nl.", "negative.", "normal.", "unremarkable.", "clear.", "WNL.", "ok.", "no abnl."])
    return pen.pick(
        [
            "No disc bulge, stenosis or foraminal narrowing.",
            "Normal disc, canal and foramina.",
            "No significant abnormality.",
            "Disc, canal and foramina are normal.",
            "No neural compromise.",
        ]
    )


def not_normal_filler(pen: Pen) -> str:
    """A sentence for a described level whose findings were all stated elsewhere (a range
    sentence, or the impression): it must neither say "normal" nor deny a finding, since the
    level is not normal and its other sentence may grade its canal or foramina."""
    return pen.pick(["Degenerative changes.", "Spondylotic changes.", "Degenerative change at this level."])


def render_level(
    rng: random.Random,
    region: str,
    level: str,
    labels: Mapping[str, str],
    v: WideVoice,
    elsewhere: frozenset[str] = frozenset(),
) -> list[str]:
    """Sentences (each ending in a full stop, without the level name) stating ``labels``.

    ``elsewhere``: pathologies stated for this level by another sentence (a range of levels),
    left out here. Returns at least one sentence.
    """
    pen = Pen(rng, v)
    disc, canal = labels["disc"], labels["canal_stenosis"]
    left, right = labels["left_foraminal"], labels["right_foraminal"]
    canal_elsewhere = "canal_stenosis" in elsewhere
    if canal_elsewhere:
        canal = "normal"  # stated elsewhere (the impression): neither stated nor denied here
    fac = labels["facet_arthropathy"]
    fac_stated = "facet_arthropathy" in elsewhere  # by a range sentence, or below as a cause
    clauses: list[list[str]] = []  # statements; a statement of several clauses may be spread over sentences
    # disc and canal
    if disc != "none" and "disc" not in elsewhere:
        noun = disc_noun(pen, region, disc)
        if canal != "normal" and pen.chance(pen.v.effects):
            clauses.append([f"{noun} {canal_effect(pen, region, canal)}"])
        elif canal != "normal" and pen.chance(0.4):
            link = pen.pick(["w/", "->", "+"]) if pen.abbrev() else pen.pick(["with", "causing", "resulting in"])
            second = canal_positive(pen, region, canal)
            if pen.chance(pen.v.spread):
                clauses.append([noun, pen.pick([f"this causes {second}", f"there is resultant {second}", second])])
            else:
                clauses.append([f"{noun} {link} {second}"])
        else:
            clauses.append([noun])
            if canal != "normal":
                clauses.append([canal_positive(pen, region, canal, np=False)])
            elif pen.chance(pen.v.negatives) and not canal_elsewhere:
                clauses.append([canal_negative(pen)])
    else:
        if "disc" not in elsewhere and pen.chance(pen.v.negatives / 2):
            clauses.append(
                [pen.pick(["no disc bulge", "no disc herniation", "disc ok" if pen.abbrev() else "normal disc"])]
            )
        if canal != "normal":
            if fac != "normal" and not fac_stated and pen.chance(pen.v.causes):
                by = facet_as_cause(pen, fac)
                fac_stated = True
                clauses.append(
                    [f"{by} {pen.pick(['causing', 'resulting in', 'with'])} {canal_positive(pen, region, canal)}"]
                )
            else:
                clauses.append([canal_positive(pen, region, canal, np=False)])
        elif pen.chance(pen.v.negatives) and not canal_elsewhere:
            clauses.append([canal_negative(pen)])
    # foramina (both stated elsewhere, the impression, when "left_foraminal" is in ``elsewhere``)
    if "left_foraminal" not in elsewhere:
        cause: str | None = None
        if (left != "normal" or right != "normal") and pen.chance(pen.v.causes):
            if fac != "normal" and not fac_stated:
                cause = facet_as_cause(pen, fac)
                fac_stated = True
            elif region == "cervical":
                cause = pen.pick(
                    [
                        "uncovertebral spurring",
                        "uncovertebral hypertrophy",
                        "UV spurring" if pen.abbrev() else "uncinate spurs",
                    ]
                )
        for clause in foramina(pen, region, level, left, right, cause):
            clauses.append([clause])
    if region == "lumbar":
        for clause in subarticular(pen, level, labels["subarticular_stenosis"]):
            clauses.append([clause])
    else:
        for clause in cord(pen, labels["cord_signal"]):
            clauses.append([clause])
    for clause in [] if fac_stated else facet(pen, fac):
        clauses.append([clause])
    for clause in fissure(pen, labels["annular_fissure"]) + hemangioma(pen, labels["hemangioma"], level):
        clauses.append([clause])
    if not clauses:
        return [not_normal_filler(pen)]
    if v.terse:
        sep = pen.pick([", ", "; ", ". "])
        flat = [c for statement in clauses for c in statement]
        if sep == ". ":
            return [f"{cap(c)}." for c in flat]
        return [sep.join(flat[:1] + flat[1:]) + "."]
    out: list[str] = []
    for statement in clauses:
        out.extend(f"{cap(c)}." for c in statement)
    return out
