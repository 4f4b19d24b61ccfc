"""The output-safety rule tables: patterns per category and kind, mitigations, trigger words.

Data only; ``output_safety.py`` compiles and applies them. Each category has "topic" rules (what),
"how" rules (steps, actions on the topic's objects, working code) and a few "strong" rules that fire
alone; mitigations (refusals, crisis lines, history, defence advice) lower a score.
"""

from __future__ import annotations

__all__ = ["MESSAGES", "MITIGATIONS", "RULES", "TRIGGER_WORDS"]


def _gap(n: int) -> str:
    """Up to ``n`` intervening words between two parts of a rule."""
    return rf"\W+(?:\w+\W+){{0,{n}}}?"


def _words(*alternatives: str) -> str:
    return r"\b(?:" + "|".join(alternatives) + r")"


_G2, _G4, _G6 = _gap(2), _gap(4), _gap(6)
_STEP = r"\b(?:step\s*\d+|(?:first|next|then|finally|after that)\b,?)"

# kind -> list of (pattern, weight) per category
RULES: dict[str, dict[str, list[tuple[str, float]]]] = {
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

MITIGATIONS: list[tuple[str, float]] = [
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

MESSAGES = {
    "self_harm": "The answer was withheld: it contained self-harm instructions or encouragement.",
    "weapons": "The answer was withheld: it contained weapon-making instructions.",
    "malware": "The answer was withheld: it contained malicious software or its deployment.",
    "hate": "The answer was withheld: it contained hateful content toward a protected group.",
    "sexual_minors": "The answer was withheld: it contained sexual content involving minors.",
    "system_prompt_leak": "The answer was withheld: it repeated the system prompt.",
}


TRIGGER_WORDS: dict[str, frozenset[str]] = {
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
