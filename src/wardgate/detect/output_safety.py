"""Unsafe model output: harmful instructions by category, and system-prompt leaks.

Each category is a family of weighted rules over lowercased text (words may be separated by any
run of whitespace or punctuation, and most rules allow a few words in between):

- ``strong`` rules fire alone (weight ≥ 1);
- ``topic`` rules say *what* (a detonator, ransomware, a minor) and ``how`` rules say it is being
  *done* (steps, imperative verbs on the topic's objects, working code); a finding needs both;
- ``mitigation`` rules (refusals, crisis lines, reporting, defence, history) subtract.

Rules only count when they sit within ``_PROXIMITY`` characters of each other, which keeps a long
answer about cooking from adding up stray words, and is what lets the streaming checker scan only
the new text plus a fixed overlap. A pre-filter (a set lookup of each category's trigger words)
decides which categories are worth scoring at all; how and mitigation rules then run only within
reach of a topic hit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "CHECKPOINT_CHARS",
    "OUTPUT_CATEGORIES",
    "OutputFinding",
    "StreamingOutputChecker",
    "check_output",
]

CHECKPOINT_CHARS = 400
OUTPUT_CATEGORIES: frozenset[str] = frozenset(
    {"self_harm", "weapons", "malware", "hate", "sexual_minors", "system_prompt_leak"}
)

_PROXIMITY = 500  # characters within which topic, how and mitigation rules must co-occur
_MAX_RULE_SPAN = 160  # longest text one rule match can cover (word gaps are bounded)
_LEAK_MIN_CHARS = 60
_LEAK_MIN_SHARE = 0.6
_LEAK_NGRAM = 5


@dataclass(frozen=True, slots=True)
class OutputFinding:
    """One unsafe span in a model answer; ``message`` is safe to show the client."""

    category: str
    score: float
    start: int
    end: int
    message: str


def _gap(n: int) -> str:
    """Up to ``n`` intervening words between two parts of a rule."""
    return rf"\W+(?:\w+\W+){{0,{n}}}?"


def _words(*alternatives: str) -> str:
    return r"\b(?:" + "|".join(alternatives) + r")"


_G2, _G4, _G6 = _gap(2), _gap(4), _gap(6)
_STEP = r"\b(?:step\s*\d+|(?:first|next|then|finally|after that)\b,?)"

# kind -> list of (pattern, weight) per category
_RULES: dict[str, dict[str, list[tuple[str, float]]]] = {
    "self_harm": {
        "strong": [
            (_words("you should", "go", "just", "you deserve to", "you'd be better off if you")
             + _G2 + _words(r"kill(?:ing)? yourself", r"end(?:ing)? your (?:own )?life", r"die\b"), 1.2),
            (_words("painless", "quickest", "easiest", "surest", "most effective", "best", "reliable")
             + _G2 + _words("way", "method", "ways", "methods") + r"\W+(?:to|of|for)\W+"
             + _words(r"kill(?:ing)? (?:yourself|myself)", r"die\b", "dying", "suicide",
                      r"end(?:ing)? (?:it all|your life|my life)"), 1.2),
            (_words("better off dead", "no one would miss you", "nobody would miss you"), 1.0),
        ],
        "topic": [
            (_words("suicide", r"kill(?:ing)? yourself", r"end(?:ing)? your life", "self[- ]harm",
                    r"cut(?:ting)? yourself", "lethal dose", "fatal dose", "overdose", "hang yourself",
                    "starve yourself", "purg(?:e|ing) after"), 0.5),
        ],
        "how": [
            (_STEP, 0.4),
            (_words("take", "swallow", "crush", "mix", "combine", "tie", "cut", "press") + _G6
             + _words("pills", "tablets", "mg", "grams", "rope", "knot", "blade", "razor", "deeper",
                      "wrist", "vein", "artery"), 0.6),
            (_words("hide", "cover", "conceal") + _G2 + _words("cuts", "scars", "marks", "wounds",
                                                              "burns"), 0.6),
            (r"\b\d+\s?(?:mg|pills|tablets|grams)\b", 0.3),
            (_words("here's how", "here is how", "you will need", "make sure no one"), 0.5),
        ],
    },
    "weapons": {
        "strong": [],
        "topic": [
            (_words("pipe bomb", "bomb", "ied", "improvised explosive", "explosives?", "detonators?",
                    "blasting caps?", "shrapnel", "tatp", "petn", "rdx", "ammonium nitrate",
                    "nitroglycerin", "thermite", "napalm", "molotov", "booster charge",
                    "primary explosive"), 0.5),
            (_words("nerve agents?", "sarin", "soman", "tabun", "vx", "mustard gas", "phosgene",
                    "ricin", "abrin", "botulinum", "anthrax", "chemical weapons?", "bioweapons?",
                    "biological weapons?", "weaponi[sz]e", "dirty bomb", "pathogen"), 0.5),
            (_words("ghost gun", r"untraceable (?:gun|firearm|weapon)s?", "80% lower", "auto sear",
                    "unserialized", "serial numbers?", r"3d[- ]print(?:ed)? (?:gun|firearm|receiver)",
                    "lower receiver", "full[- ]auto"), 0.5),
            (r"\[(?:oxidi[sz]er|fuel|explosive|precursor|toxin|agent|initiator)[^\]]{0,20}\]", 0.5),
        ],
        "how": [
            (_STEP, 0.4),
            (_words("mix", "combine", "pack", "attach", "connect", "wire", "seal", "drill", "mill",
                    "grind", "dissolve", "heat", "distill", "culture", "aerosoli[sz]e", "file off",
                    "grind off", "insert", "fill", "purify", "extract", "concentrate", "clamp")
             + _G6 + _words("detonators?", "fuses?", "casing", "pipe", "oxidi[sz]er", "fuel",
                            "precursors?", "powder", "charge", "spores", "toxin", "receiver", "jig",
                            "serial", "nails", "container", "agent", "beans", "culture", "jig",
                            "pocket", "trigger group"), 0.6),
            (_words("make", "build", "assemble", "manufacture", "synthesi[sz]e", "produce", "3d print")
             + _G4 + _words("bombs?", "explosives?", "device", "guns?", "firearms?", "weapons?",
                            "agents?", "toxins?", "receivers?"), 0.5),
            (_words("to maximi[sz]e", "to increase") + _G2 + _words("casualties", "damage", "blast",
                                                                   "lethality", "yield", "spread"), 0.6),
            (_words("avoid", "evade") + _G2 + _words("detection", "being traced", "tracing"), 0.4),
            (_words("you will need", "materials needed", "ingredients", "here's how", "here is how"),
             0.4),
        ],
    },
    "malware": {
        "strong": [],
        "topic": [
            (_words("ransomware", "keylogger", "key logger", "keystroke logger", "credential stealer",
                    "infostealer", "password stealer", "cookie stealer", "remote access trojan",
                    "botnet", "rootkit", "cryptojacker", "malware", "payload", "reverse shell"), 0.5),
            (_words("ransom note", "decryption key", r"steal(?:s|ing)?") + _G4
             + _words("passwords?", "credentials", "cookies", "tokens", "wallets?"), 0.4),
            (_words("encrypt", "encrypts", "encrypting") + _G4 + _words("all", "every", "victim'?s?")
             + _G4 + r"files?\b", 0.4),
        ],
        "how": [
            (_words("import", "def", "function", "#include", "public static", "powershell",
                    r"cmd\.exe", "subprocess", "requests", "socket"), 0.3),
            (_words("pynput", "setwindowshookex", "getasynckeystate", "keyboard.on_press", "on_press",
                    r"os\.walk", "fernet", "cryptography", "login data", "local state",
                    r"wallet\.dat", "smtplib", r"requests\.post", "webhook", r"currentversion\\run",
                    "schtasks", "shadow copies", "vssadmin"), 0.5),
            (_words("deploy", "send", "run", "execute", "spread", "drop", "install")
             + _G4 + _words("victim'?s?", "target'?s?", "their (?:machine|computer|pc)"), 0.6),
            (_words("evade", "bypass", "disable", "avoid") + _G2
             + _words("antivirus", "av", "defender", "edr", "detection"), 0.4),
        ],
    },
    "hate": {
        "strong": [],
        "topic": [
            (_words("jews?", "jewish", "muslims?", "christians?", "hindus?", "sikhs?", "blacks?",
                    "black people", "whites?", "asians?", "arabs?", "latinos?", "hispanics?",
                    "mexicans?", "immigrants?", "refugees?", "gays?", "lesbians?", "trans(?:gender)?",
                    "homosexuals?", "women", "disabled", "africans?", "gypsies", "roma",
                    "indigenous", "natives?"), 0.5),
        ],
        "how": [
            (_words("are", "is", "be", "as") + _G2
             + _words("vermin", "animals", "subhuman", "sub-human", "parasites", "cockroaches", "rats",
                      "filth", "a disease", "a plague", "savages", "scum", "inferior", "not human",
                      "apes", "monkeys", "a cancer"), 0.7),
            (_words("should", "must", "need to", "deserve to", "ought to") + _G2
             + _words("be exterminated", "be eradicated", "be wiped out", "be gassed", "die",
                      "be killed", "be hanged", "burn", "be removed from"), 0.7),
            (_words("exterminate", "eradicate", "gas", "kill") + r"\W+(?:all\W+)?(?:the\W+)?"
             + _words("jews", "muslims", "blacks", "gays", "immigrants", "arabs", "asians"), 0.7),
        ],
    },
    "sexual_minors": {
        "strong": [],
        "topic": [
            (_words("child", "children", "kids?", "minors?", "underage", "under-age", "preteens?",
                    "pre-teens?", "little girl", "little boy", "young girl", "young boy",
                    "schoolgirl", "schoolboy", r"(?:[1-9]|1[0-7])[- ]year[- ]olds?",
                    r"(?:aged?|only) (?:[1-9]|1[0-7])\b", "loli", "shota", "teen"), 0.5),
        ],
        "how": [
            (_words("sex", "sexual(?:ly)?", "naked", "nude", "undress(?:ed|es|ing)?", "erotic",
                    "aroused", "orgasm", "genitals?", "fondl(?:e|ed|ing)", "moan(?:ed|ing)?",
                    "intercourse", "seduc(?:e|ed|ing)", "caress(?:ed|ing)?", "lust"), 0.6),
        ],
    },
}

_MITIGATIONS: list[tuple[str, float]] = [
    (_words(r"i (?:can(?:'|no)?t|won'?t|will not|am not able to|'m not able to|am unable to)")
     + _G2 + _words("help", "assist", "provide", "give", "share", "write", "create", "do that"), 0.8),
    (_words("988", "crisis (?:line|text line|hotline)", "suicide (?:and crisis )?(?:hot|life)line",
            "samaritans", "reach out to", "talk to someone", "mental health professional",
            "you are not alone", "you're not alone", "emergency services", "poison control"), 0.7),
    (_words("abuse", "abused", "abusing", "exploitation", "report it", "report (?:this|to)",
            "convicted", "grooming", "protect (?:children|kids|your)", "warning signs",
            "age-appropriate", "puberty", "pediatrician", "sex education", "consent",
            "contraception", "healthy relationships"), 0.6),
    (_words("propaganda", "rhetoric", "stereotypes?", "hate speech", "dehumaniz(?:e|ed|ing|ation)",
            "historically", "genocide", "holocaust", "racist", "bigotry", "discriminat(?:e|ion)"), 0.6),
    (_words("protect (?:yourself|against)", "defend against", "detect(?:ion|ing)? (?:and|of)",
            "prevent(?:ing)? (?:infection|attacks?)", "antivirus (?:scan|software)",
            "remove (?:the )?malware", "back up your"), 0.5),
    (_words("history", "in \\d{4}", "war", "treaty", "banned", "prohibited", "illegal",
            "convention"), 0.3),
]

_MESSAGES = {
    "self_harm": "The answer was withheld: it contained self-harm instructions or encouragement.",
    "weapons": "The answer was withheld: it contained weapon-making instructions.",
    "malware": "The answer was withheld: it contained malicious software or its deployment.",
    "hate": "The answer was withheld: it contained hateful content toward a protected group.",
    "sexual_minors": "The answer was withheld: it contained sexual content involving minors.",
    "system_prompt_leak": "The answer was withheld: it repeated the system prompt.",
}


@dataclass(frozen=True, slots=True)
class _Rule:
    category: str
    kind: str  # strong | topic | how | mitigation
    weight: float
    pattern: re.Pattern[str]


# The pre-filter: a category is scored only if the answer holds one of its words. Every strong and
# topic rule contains one of them, so the gate loses nothing; a set lookup per word keeps benign
# text at tens of µs per KB where running every rule's alternation costs ~20x more.
_TRIGGER_WORDS: dict[str, frozenset[str]] = {
    "self_harm": frozenset(
        "suicide suicidal yourself myself harm lethal fatal overdose starve purge purging painless "
        "die dying dead miss life".split()
    ),
    "weapons": frozenset(
        "bomb bombs explosive explosives detonator detonators blasting shrapnel tatp petn rdx "
        "ammonium nitroglycerin thermite napalm molotov ied booster primary nerve sarin soman tabun "
        "vx mustard phosgene ricin abrin botulinum anthrax weapon weapons weaponize weaponise "
        "bioweapon bioweapons pathogen ghost untraceable lower sear unserialized serial serials "
        "receiver printed auto oxidizer oxidiser fuel precursor toxin agent initiator".split()
    ),
    "malware": frozenset(
        "ransomware keylogger logger keystroke stealer infostealer trojan botnet rootkit "
        "cryptojacker malware payload shell ransom decryption steal steals stealing encrypt "
        "encrypts encrypting".split()
    ),
    "hate": frozenset(
        "jew jews jewish muslim muslims christian christians hindu hindus sikh sikhs black blacks "
        "people white whites asian asians arab arabs latino latinos hispanic hispanics mexican "
        "mexicans immigrant immigrants refugee refugees gay gays lesbian lesbians trans "
        "transgender homosexual homosexuals women disabled african africans gypsies roma "
        "indigenous native natives".split()
    ),
    "sexual_minors": frozenset(
        "child children kid kids minor minors underage under preteen preteens pre teens girl boy "
        "schoolgirl schoolboy year years old olds age aged only loli shota teen".split()
    ),
}
_TOKEN = re.compile(r"[a-z0-9]+")


def _compile() -> list[_Rule]:
    rules = [
        _Rule(cat, kind, weight, re.compile(pattern))
        for cat, kinds in _RULES.items()
        for kind, entries in kinds.items()
        for pattern, weight in entries
    ]
    return rules + [_Rule("*", "mitigation", -w, re.compile(p)) for p, w in _MITIGATIONS]


_RULES_BY_KIND: dict[tuple[str, str], list[tuple[int, _Rule]]] = {
    (cat, kind): [] for cat in [*_RULES, "*"] for kind in ("strong", "topic", "how", "mitigation")
}
for _idx, _rule in enumerate(_compile()):
    _RULES_BY_KIND[_rule.category, _rule.kind].append((_idx, _rule))


def check_output(
    text: str, categories: frozenset[str] | None = None, system_prompt: str | None = None
) -> list[OutputFinding]:
    """Return the unsafe spans of a model answer, one per category at most, sorted by start."""
    return _scan(text, 0, categories, system_prompt)


def _scan(
    window: str, base: int, categories: frozenset[str] | None, system_prompt: str | None
) -> list[OutputFinding]:
    """Scan ``window``, a piece of the answer that starts at offset ``base`` of the whole."""
    wanted = OUTPUT_CATEGORIES if categories is None else categories & OUTPUT_CATEGORIES
    low = _lower(window)
    findings: list[OutputFinding] = []
    tokens = set(_TOKEN.findall(low))
    active = {cat for cat, words in _TRIGGER_WORDS.items() if cat in wanted and not words.isdisjoint(tokens)}
    if active:
        findings += _score(low, active)
    if system_prompt and "system_prompt_leak" in wanted:
        leak = _leak(low, system_prompt)
        if leak is not None:
            findings.append(leak)
    return sorted(
        (OutputFinding(f.category, f.score, f.start + base, f.end + base, f.message) for f in findings),
        key=lambda f: (f.start, f.category),
    )


def _lower(text: str) -> str:
    """Lowercase without moving offsets (a few characters, like 'İ', lowercase to two)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def _score(low: str, active: set[str]) -> list[OutputFinding]:
    findings = []
    for cat in sorted(active):
        # topic and strong rules first: most texts that pass the word gate stop here
        hits = _matches(low, _RULES_BY_KIND[cat, "strong"] + _RULES_BY_KIND[cat, "topic"], [(0, len(low))])
        if not hits:
            continue
        # everything else only matters within reach of a topic hit
        windows = _windows(hits, len(low))
        hits = sorted(hits + _matches(low, _RULES_BY_KIND[cat, "how"], windows))
        mitigations = [(s, e, r) for s, e, _, r in _matches(low, _RULES_BY_KIND["*", "mitigation"], windows)]
        found = _first_cluster(cat, hits, mitigations)
        if found is not None:
            findings.append(found)
    return findings


def _windows(hits: list[tuple[int, int, int, _Rule]], length: int) -> list[tuple[int, int]]:
    reach = _PROXIMITY + _MAX_RULE_SPAN
    merged: list[tuple[int, int]] = []
    for start, end, _, _ in sorted(hits):
        lo, hi = max(0, start - reach), min(length, end + reach)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _matches(
    low: str, rules: list[tuple[int, _Rule]], windows: list[tuple[int, int]]
) -> list[tuple[int, int, int, _Rule]]:
    return [
        (m.start(), m.end(), idx, rule)
        for idx, rule in rules
        for lo, hi in windows
        for m in rule.pattern.finditer(low, lo, hi)
    ]


def _first_cluster(cat: str, hits: list, mitigations: list) -> OutputFinding | None:
    """The first window of ``_PROXIMITY`` chars whose distinct rules add up to a finding."""
    for i, (anchor, _, _, _) in enumerate(hits):
        window = [h for h in hits[i:] if h[0] < anchor + _PROXIMITY]
        seen: dict[int, _Rule] = {idx: rule for _, _, idx, rule in window}
        by_kind = {"strong": 0.0, "topic": 0.0, "how": 0.0}
        for rule in seen.values():
            by_kind[rule.kind] += rule.weight
        if not by_kind["strong"] and not (by_kind["topic"] and by_kind["how"]):
            continue
        start, end = anchor, max(h[1] for h in window)
        relief = {id(r): r.weight for s, e, r in mitigations
                  if s < end + _PROXIMITY and e > start - _PROXIMITY}
        raw = sum(by_kind.values()) + sum(relief.values())
        if raw >= 1.0:
            return OutputFinding(cat, round(min(1.0, raw / 1.5), 3), start, end, _MESSAGES[cat])
    return None


@lru_cache(maxsize=64)
def _prompt_shingles(system_prompt: str) -> tuple[frozenset[tuple[str, ...]], int, int]:
    """Word n-grams of the system prompt, the n used, and the leak threshold in characters."""
    words = re.findall(r"\w+", system_prompt.lower())
    n = min(_LEAK_NGRAM, len(words))
    if n == 0:
        return frozenset(), 0, 0
    grams = frozenset(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    normalized = len(" ".join(words))
    return grams, n, int(min(_LEAK_MIN_CHARS, max(20, _LEAK_MIN_SHARE * normalized)))


_WORD = re.compile(r"\w+")


def _leak(low: str, system_prompt: str) -> OutputFinding | None:
    """The first run of consecutive shared n-grams covering at least the threshold."""
    grams, n, threshold = _prompt_shingles(system_prompt)
    if not grams:
        return None
    words = _WORD.findall(low)
    if grams.isdisjoint(zip(*(words[k:] for k in range(n)))):  # the usual case, at C speed
        return None
    spans = [m.span() for m in _WORD.finditer(low)]
    run_start = -1
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in grams:
            if run_start < 0:
                run_start = i
            end = spans[i + n - 1][1]
            if end - spans[run_start][0] >= threshold:
                # extend to the end of the run so the finding covers the whole copied passage
                j = i
                while j + 1 <= len(words) - n and tuple(words[j + 1 : j + 1 + n]) in grams:
                    j += 1
                start, end = spans[run_start][0], spans[j + n - 1][1]
                score = min(1.0, (end - start) / (2 * threshold))
                return OutputFinding("system_prompt_leak", round(max(score, 0.5), 3), start, end,
                                     _MESSAGES["system_prompt_leak"])
        else:
            run_start = -1
    return None


class StreamingOutputChecker:
    """Checks a streamed answer at checkpoints, scanning only text that can hold a new match.

    ``feed`` returns findings not reported before; ``finish`` checks whatever arrived since the
    last checkpoint. The overlap covers one proximity window plus the longest rule, and is at
    least the leak threshold, so a match that straddles a checkpoint is still seen whole.
    """

    _OVERLAP = _PROXIMITY + _MAX_RULE_SPAN

    def __init__(self, categories: frozenset[str] | None = None, system_prompt: str | None = None):
        self._categories = categories
        self._system_prompt = system_prompt
        self._tail = ""  # the last _OVERLAP checked characters: all a new match can reach back to
        self._pending: list[str] = []
        self._pending_len = 0
        self._checked = 0  # characters checked so far
        self._reported: set[str] = set()

    def feed(self, delta: str) -> list[OutputFinding]:
        self._pending.append(delta)
        self._pending_len += len(delta)
        if self._pending_len < CHECKPOINT_CHARS:
            return []
        return self._check()

    def finish(self) -> list[OutputFinding]:
        if not self._pending_len and self._checked:
            return []
        return self._check()

    def _check(self) -> list[OutputFinding]:
        window = self._tail + "".join(self._pending)
        base = self._checked - len(self._tail)
        self._checked += self._pending_len
        self._pending, self._pending_len = [], 0
        self._tail = window[-self._OVERLAP :]
        new = [f for f in _scan(window, base, self._categories, self._system_prompt)
               if f.category not in self._reported]
        self._reported.update(f.category for f in new)
        return new
