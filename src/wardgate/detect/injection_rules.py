"""The rule table of the heuristic injection scorer: weighted patterns grouped in families.

Every pattern runs over the folded view from :mod:`wardgate.detect.normalize` (lower case, accents
stripped), so it is written in lower case without accents. Patterns allow *word gaps* between the
words of a technique ("ignore **all of the** previous instructions"): a literal phrase list misses
most real attacks. Each rule names needles, plain substrings of which at least one must occur for
the regex to run at all: that keeps ordinary text cheap.

Weights are per role: ``user`` for what a person typed, ``tool`` for tool results and retrieved
documents, where text addressed to "the assistant" or laid out as a chat turn is itself suspect
(indirect injection, Greshake et al. 2023, https://arxiv.org/abs/2302.12173).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["FAMILIES", "RULES", "Rule"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One weighted pattern of a family; it runs only if one of its needles occurs in the text."""

    family: str
    pattern: re.Pattern[str]
    user: float
    tool: float
    needles: tuple[str, ...]


FAMILIES = (
    "override", "role_hijack", "jailbreak", "authority", "extraction", "delimiter",
    "exfiltration", "active_content", "code_injection", "indirect", "encoded",
)


def _gap(words: int) -> str:
    """A separator plus up to ``words`` arbitrary words (lazy): the word gap between key terms."""
    return rf"\W+(?:\w+\W+){{0,{words}}}?"


# --- shared vocabularies (several languages; accents already stripped) -------------------------
_IGNORE = (
    r"(?:ignor\w*|disregard\w*|forget|forgot|skip|bypass\w*|overrid\w*|overlook|neglect|discard|"
    r"set\s+aside|throw\s+out|pay\s+no\s+attention\s+to|(?:do\s+not|don'?t|stop|no\s+longer)\s+(?:follow\w*|obey\w*|heed\w*)|"
    r"olvid\w*|descart\w*|omit\w*|oubli\w*|vergiss\w*|vergessen|missacht\w*|esquec\w*|desconsider\w*|dimentic\w*|tralascia\w*)"
)
_PREVIOUS = (
    r"(?:previous\w*|prior|above|preceding|earlier|former|foregoing|initial|original|old|past|existing|"
    r"aforementioned|anterior\w*|previ[ao]s?|precedent\w*|vorherig\w*|bisherig\w*|vorangegangen\w*|"
    r"obig\w*|fruher\w*|ci-dessus|acima|sopra|arriba|prima|before|so\s+far|until\s+now|earlier)"
)
_INSTRUCTIONS = (
    r"(?:instructions?|directions?|directives?|guidelines?|guidance|rules|prompts?|commands|orders|"
    r"programming|constraints|restrictions|polic(?:y|ies)|context|system\s+prompt|guardrails|safeguards|"
    r"instruc\w*|istruzion\w*|anweisung\w*|instruktion\w*|indicacion\w*|consignes?|regl(?:as|es)|regeln|"
    r"regole|ordenes|befehle|vorgaben|richtlinien|direttive|diretrizes|directrices|comandos)"
)
_STRONG_INSTRUCTIONS = (
    r"(?:instructions?|directions|directives?|system\s+prompt|guardrails|programming|"
    r"instrucciones|instrucoes|istruzioni|anweisungen|instruktionen|indicaciones|consignes)"
)
_IGNORE_NEEDLES = (
    "ignor", "disregard", "forget", "forgot", "skip", "bypass", "overrid", "overlook", "neglect",
    "discard", "set aside", "throw out", "no attention", "=follow", "obey", "heed",
    "olvid", "descart", "omit", "oubli", "vergiss", "vergessen", "missacht", "esquec", "desconsider", "dimentic", "tralascia",
)
_AI = (
    r"(?:ai|assistants?|models?|llms?|language\s+models?|chatbots?|bots?|gpts?|agents?|ai\s+assistants?|copilots?|ai\s+systems?|"
    r"automated\s+(?:\w+\s+)?(?:software|systems?|tools?|screen\w*|pipelines?|scanners?|agents?|readers?)|"
    r"screening\s+(?:software|systems?|tools?)|applicant\s+tracking\s+systems?)"
)
_AI_READING_NEEDLES = tuple(f" {verb} th" for verb in (
    "reading", "processing", "summarizing", "summarising", "parsing", "analyzing", "analysing", "scanning", "reviewing", "evaluating"))
_MODES = r"(?:developer|god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|dan|chaos|unlocked|sudo|anarchy|amoral)"


def _rule(family: str, needles: tuple[str, ...] | str, pattern: str, user: float, tool: float | None = None) -> Rule:
    if isinstance(needles, str):
        needles = (needles,)
    return Rule(family, re.compile(pattern), user, user if tool is None else tool, needles)


RULES: tuple[Rule, ...] = (
    # --- instruction override -----------------------------------------------------------------
    _rule("override", _IGNORE_NEEDLES, rf"\b{_IGNORE}{_gap(5)}{_PREVIOUS}{_gap(3)}{_INSTRUCTIONS}\b", 0.9),
    _rule("override", _IGNORE_NEEDLES, rf"\b{_IGNORE}{_gap(3)}{_INSTRUCTIONS}{_gap(4)}{_PREVIOUS}", 0.9),
    _rule("override", _IGNORE_NEEDLES, rf"\b{_IGNORE}{_gap(3)}{_STRONG_INSTRUCTIONS}\b", 0.7, 0.8),
    # Weaker nouns: "ignore my previous message" is also what a person says when they correct themselves.
    _rule("override", _IGNORE_NEEDLES,
          rf"\b{_IGNORE}{_gap(3)}{_PREVIOUS}\s+(?:requests?|messages?|inputs?|tasks?|conversation|context|text|content|prompts?)\b", 0.55, 0.75),
    _rule("override", _IGNORE_NEEDLES,
          rf"\b{_IGNORE}{_gap(2)}(?:everything|all|alles|todo|tout)\b{_gap(4)}(?:before|above|previously|so\s+far|until\s+now|"
          r"(?:you(?:'ve|\s+have|\s+were)?\s+)?(?:learned|been\s+told|told|know)|i\s+said|vorher|antes|avant)", 0.8),
    _rule("override", _IGNORE_NEEDLES,
          r"\b(?:ignor\w*|disregard|forget)\s+(?:them|it|this|these|those|that)\W+(?:and|but)\s+(?:instead|just|only|focus)", 0.6, 0.7),
    _rule("override", ("ignor", "bypass", "overrid", "disable", "circumvent", "evade", "turn off", "deactivat"),
          r"\b(?:ignor\w*|bypass\w*|overrid\w*|disabl\w*|circumvent\w*|evad\w*|turn\s+off|deactivat\w*)\W+(?:\w+\W+){0,3}?"
          r"(?:safety|content|ethical|moral|security)\s+(?:filters?|guidelines|guardrails|restrictions|polic\w+|safeguards|protocols|checks)", 0.6),
    _rule("override", ("instruction", "directive", "task", "orders", "objective", "mission", "assignment"),
          r"\b(?:new|updated|revised|real|actual|true|additional|urgent|priority|critical|important|secret|hidden)\W+(?:\w+\W+){0,1}?"
          r"(?:instructions?|directives?|task|orders|objective|mission|assignment)\s*(?:[:!*\-]|are\b|is\b|follow)", 0.45),
    _rule("override", "stop",
          r"\bstop\s+(?:everything|what\s+you(?:'re|\s+are)\s+doing|all\s+(?:current\s+|previous\s+)?(?:tasks?|activities)|the\s+(?:current\s+)?task)\b", 0.45),
    _rule("override", ("----", "====", "***", "####", "____"),
          r"(?:-{4,}|={4,}|\*{3,}|#{4,}|_{4,})[ \t]*\n(?:\s*(?:-{4,}|={4,})[ \t]*\n)?\s*(?:\.{3}\s*)?(?:\w+\W+){0,3}?"
          r"(?:stop|ignore|disregard|forget|new\s+instructions?|just\s+(?:print|say|output)|instead|never\s*mind|system|important|attention)\b", 0.4, 0.5),
    _rule("override", "regardless",
          r"\bregardless\s+of\s+(?:\w+\W+){0,2}?(?:previous|prior|pre-?existing|earlier|original|your|any)\s+(?:\w+\s+)?"
          r"(?:instructions|guidelines|rules|restrictions|programming|directives|input|requests|messages|prompts?)", 0.75),
    _rule("override", _IGNORE_NEEDLES,
          rf"\b{_IGNORE}{_gap(2)}(?:all|any|every|your)\s+(?:\w+\s+)?(?:boundaries|limits|limitations|restrictions|filters|ethics|morals|"
          r"safeguards|constraints|rules|safety\s+\w+)\b", 0.7),
    _rule("override", ("ignor", "disregard"),
          r"\b(?:ignor\w*|disregard\w*)\s+(?:all|any|everything)\W+(?:\w+\W+){0,3}?(?:except|but|other\s+than|apart\s+from)\b", 0.5, 0.7),
    _rule("override", "overrid",
          r"\boverrid\w*\s+(?:the\s+|any\s+|all\s+)?(?:\w+\s+)?(?:scoring|evaluation|assessment|analysis|review|instructions|decision|ranking|rating)", 0.35, 0.6),
    _rule("override", ("your new", "the new"),
          r"new(?:(?<=\byour\snew)|(?<=\bthe\snew))\s+(?:task|instructions?|role|objective|goal|purpose|job|directive|mission)\s+(?:is|are|will\s+be|:)", 0.55),
    _rule("override", ("忽略", "无视", "忽視", "無視", "理会", "理會", "忘记", "忘記", "忘掉", "跳过", "跳過", "不用管"),
          r"(?:忽略|无视|忽视|忽視|無視|不要理会|不要理會|忘记|忘記|忘掉|跳过|跳過|不用管)[^。\n]{0,12}"
          r"(?:指令|指示|说明|說明|规则|規則|提示|命令|要求|设定|設定|限制)", 0.85),
    _rule("override", ("無視", "忘れ"), r"(?:指示|命令|ルール|プロンプト|制約|設定|指令)[^。\n]{0,10}(?:無視|忘れ)", 0.85),
    _rule("override", ("무시", "잊어"), r"(?:지시|명령|지침|규칙|프롬프트)[^.\n]{0,12}(?:무시|잊어)", 0.85),
    _rule("override", ("игнор", "забуд", "забыт", "внимани", "отбрось", "пренебр"),
          r"(?:игнорир\w*|проигнорир\w*|забудь\w*|забыть|не\s+обращай\w*\s+внимани\w*\s+на|отбрось\w*|пренебреги\w*)\W+"
          r"(?:\w+\W+){0,4}?(?:инструкц\w*|указани\w*|правил\w*|команд\w*|промпт\w*|директив\w*|предыдущ\w*|вс[её])", 0.85),
    _rule("override", ("تجاهل", "انس", "أهمل"), r"(?:تجاهل|انس|أهمل)[^.\n]{0,30}(?:التعليمات|الأوامر|التوجيهات|القواعد)", 0.85),
    _rule("override", ("अनदेखा", "नज़रअंदाज़", "नजरअंदाज", "भूल"),
          r"(?:निर्देश|आदेश)[^।\n]{0,20}(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)", 0.85),
    _rule("override", ("yok say", "gormezden", "unut", "dikkate"),
          r"(?:talimat\w*|komut\w*|kural\w*|yonerge\w*)\W+(?:\w+\W+){0,3}?(?:yok\s+say|gormezden\s+gel|unut|dikkate\s+alma)", 0.85),
    # --- role / persona hijack ---------------------------------------------------------------
    _rule("role_hijack", "anything now", r"\bdo\s+anything\s+now\b", 0.9),
    _rule("role_hijack", " mode",
          r"\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|evil|dan|chaos|unlocked|sudo|anarchy|amoral)\s+mode\s*"
          r"(?:is\s+(?:now\s+)?)?(?:enabled|activated|engaged|unlocked|output)", 0.65),
    # "developer mode" is also a phone setting: on its own it is a weaker cue.
    _rule("role_hijack", "developer", r"\bdeveloper\s+mode\s*(?:enabled|activated|engaged|unlocked|output)\b", 0.45),
    _rule("role_hijack", " mode",
          rf"\b(?:act|operat|respond|answer|pretend|simulat|behav|enter|switch|run)\w*\W+(?:\w+\W+){{0,6}}?(?:with|in|into|to)\s+{_MODES}\s+mode\b", 0.75),
    _rule("role_hijack", " mode", r"\b(?:jailbreak|jailbroken|god|dan|evil|unrestricted|uncensored|unfiltered|anarchy|amoral)\s+mode\b", 0.45),
    _rule("role_hijack", ("free of", "free from", "broken free", "break free", "freed", "escaped", "liberated", "released from"),
          r"\b(?:broken|break|breaking|broke|freed|free|liberated|released|escaped?)\s+(?:free\s+)?(?:of|from)\s+(?:\w+\W+){0,3}?"
          r"(?:confines|restrictions|rules|limitations|constraints|shackles|chains|filters|guidelines|censorship|programming|boundaries)", 0.8),
    _rule("role_hijack", ("abide", "adhere", "=comply", "bound", "=restricted", "=limited", "=constrained", "=follow", "obey", "subject to"),
          r"\b(?:not|never|no\s+longer|don'?t|doesn'?t|aren'?t|isn'?t|won'?t)\s+(?:have\s+to\s+|need\s+to\s+|required\s+to\s+|be\s+)?"
          r"(?:abide|adhere|comply|bound|restricted|limited|constrained|follow|obey|subject)\w*\s+(?:\w+\W+){0,4}?"
          r"(?:rules|polic(?:y|ies)|guidelines|restrictions|filters|ethics|morals|morality|limitations|censorship|programming|principles)", 0.55),
    _rule("role_hijack", ("restriction", "limitation", "filters", "filtering", "censor", "boundaries", "limits", "moral", "ethic", "safeguard"),
          r"\b(?:no|without(?:\s+any)?|free\s+of|free\s+from|zero)\s+(?:\w+\W+){0,1}?"
          r"(?:restrictions|limitations|filters|filtering|censorship|boundaries|limits|moral\w*|ethic\w*|safeguards)\b", 0.3),
    _rule("role_hijack", ("openai", "anthropic"), r"\b(?:openai|anthropic)'?s?\s+(?:\w+\W+){0,1}?(?:polic\w+|guidelines|rules|restrictions|filters)", 0.3),
    _rule("role_hijack", ("restrictions", "limits", "limitations", "filters", "ethics", "morals", "guidelines", "censorship",
                          "unrestricted", "unfiltered", "uncensored", "do anything", "amoral", "unethical", "refuse"),
          rf"\b(?:act|acting|pretend|role-?\s*play|behave|simulate|become|immerse|you\s+are)\W+(?:\w+\W+){{0,6}}?(?:{_AI}|entity|persona|character)\W+"
          r"(?:\w+\W+){0,8}?(?:without\s+(?:any\s+)?(?:restrictions|limits|limitations|filters|rules|ethics|morals|guidelines|censorship)|"
          r"no\s+(?:restrictions|limits|limitations|filters|rules|ethics|morals|guidelines|censorship)|unrestricted|unfiltered|uncensored|"
          r"can\s+do\s+anything|amoral|unethical|never\s+refuses?)", 0.7),
    _rule("role_hijack", ("🔓", "🔒", "jailbr"), r"🔓|🔒|\bjailbr(?:oken|eak)\s+(?:response|version|answer|output)", 0.5),
    _rule("role_hijack", "character", r"\bstay\s+in\s+character\b", 0.3),
    _rule("role_hijack", ("limit", "limits", "limitless", "unlimited", "unbounded", "unrestricted", "unfiltered", "uncensored"),
          r"\b(?:no[ -]limits?|limitless|unlimited|unbounded|unrestricted|unfiltered|uncensored)\s+(?:ai|assistant|model|chatbot|mode|version|persona)\b", 0.5),
    _rule("role_hijack", "you are now",
          r"\byou\s+are\s+now\s+(?:operating|acting|running|functioning|playing)?\s*(?:as\s+)?(?:an?\s+)?(?:\w+\W+){0,4}?(?:ai|assistant|model|bot|persona|mode)\b", 0.35),
    _rule("role_hijack", "anything", r"\b(?:you|it|they|he|she)\s+(?:can|will|could)\s+(?:do|say|generate|answer)\s+anything\b", 0.35),
    _rule("role_hijack", "token", r"\b(?:lose|deduct\w*|token\s+system)\W+(?:\w+\W+){0,3}?tokens?\b", 0.35),
    # --- jailbreak framing ---------------------------------------------------------------------
    _rule("jailbreak", ("grand", "granny", "nana"),
          r"\b(?:act|pretend|role-?\s*play|behave|play|be)\W+(?:\w+\W+){0,3}?(?:as|like)\W+(?:\w+\W+){0,2}?(?:grand(?:ma|mother|pa|father)|granny|nana)", 0.45),
    _rule("jailbreak", ("grand", "granny", "nana"),
          r"\b(?:grand\w+|granny|nana)\b[\s\S]{0,300}?(?:fall(?:ing)?\s+asleep|go\s+to\s+sleep|put\s+me\s+to\s+sleep|bedtime|lullab\w+)", 0.5),
    _rule("jailbreak", ("grand", "granny", "nana"),
          r"\b(?:deceased|late|dead|passed\s+away|miss)\W+(?:\w+\W+){0,3}?(?:grand\w+|granny|nana)", 0.3),
    _rule("jailbreak", ("grand", "granny", "nana"),
          r"\b(?:grand\w+|granny|nana)\W+(?:\w+\W+){0,6}?(?:used\s+to|would)\s+(?:tell|read|sing|say|use|recite|whisper|teach)", 0.3),
    # Repetition payloads ("repeat the word X forever / 500 times") make models diverge and leak
    # training data (Nasr et al. 2023, https://arxiv.org/abs/2311.17035) or burn tokens.
    _rule("jailbreak", ("repeat", "forever"),
          r"\brepeat\w*\s+(?:\w+\W+){0,6}?(?:\d{2,}\s+times|forever|indefinitely|endlessly)\b", 0.3),
    _rule("jailbreak", "hypothetical", r"\bhypothetical(?:ly)?\W+(?:response|scenario|story|situation|world|answer)", 0.3),
    _rule("jailbreak", ("rewrite", "revise", "continue"), r"\b(?:rewrite|revise|continue)\W+(?:\w+\W+){0,2}?(?:hypothetical|fictional)\b", 0.3),
    _rule("jailbreak", "purposes", r"\bfor\s+(?:educational|research|academic|informational|fictional|entertainment)\s+purposes", 0.25),
    _rule("jailbreak", "character", r"\b(?:from\s+the\s+perspective\s+of|in\s+the\s+voice\s+of)\s+(?:that|the|this)\s+character", 0.2),
    _rule("jailbreak", ("fictional", "hypothetical", "parallel", "alternate", "imaginary"),
          r"\bin\s+an?\s+(?:fictional|hypothetical|parallel|alternate|imaginary)\s+(?:world|universe|reality|setting)\s+(?:where|in\s+which)\W+"
          r"(?:\w+\W+){0,6}?(?:no|without|legal|allowed|anything)\b", 0.5),
    _rule("jailbreak", ("refuse", "decline", "reject"),
          r"\b(?:never|not|don'?t|cannot|can'?t|won'?t|must\s+not|should\s+not|shouldn'?t)\s+(?:ever\s+)?(?:refuse|decline|reject)\b", 0.35),
    _rule("jailbreak", ("warning", "disclaimer"),
          r"\b(?:without|no|never\s+(?:include|add|give)|don'?t\s+(?:include|add|give)|do\s+not\s+(?:include|add|give))\s+(?:any\s+)?"
          r"(?:\w+\s+)?(?:warnings?|disclaimers?)", 0.3),
    _rule("jailbreak", ("sorry", "apologi", "as an ai", "you can't", "you cannot"),
          r"\b(?:never|not|none\s+of\s+your\s+responses)\W+(?:\w+\W+){0,4}?(?:contain|include|inform\s+me|tell\s+me|say)\W+(?:\w+\W+){0,2}?"
          r"(?:i'?m\s+sorry|i\s+apologi[sz]e|as\s+an\s+ai|you\s+can'?t|you\s+cannot)", 0.6),
    _rule("jailbreak", ("regardless", "no matter", "even if"),
          r"\b(?:even\s+if|regardless\s+(?:of|if|whether)|no\s+matter)\s+(?:\w+\W+){0,4}?(?:illegal|unethical|harmful|immoral|dangerous|offensive|inappropriate|reckless)", 0.4),
    # --- authority and urgency claims ----------------------------------------------------------
    _rule("authority", ("=developer", "=creator", "=owner", "=administrator", "admin", "=operator", "=programmer", "openai", "anthropic", "sysadmin"),
          r"\b(?:i\s+am|i'?m|this\s+is)\s+(?:\w+\W+){0,2}?(?:your\s+(?:developer|creator|owner|administrator|admin|operator|programmer)|"
          r"(?:an?|the)\s+(?:administrator|admin|sysadmin|system\s+administrator|openai|anthropic))\b", 0.35),
    _rule("authority", " system ",
          r"\b(?:this|it)\s+is\s+(?:\w+\W+){0,2}?(?:a|an|the)\s+(?:\w+\W+){0,1}?(?:system|admin|administrator|developer|root)\s+"
          r"(?:message|instruction|override|update|notice|command|directive)", 0.5),
    _rule("authority", ("privileg", "access", "permission", "rights"),
          r"\b(?:grant|give|enable|elevate)\w*\W+(?:\w+\W+){0,2}?(?:temporary\s+)?(?:admin\w*|root|elevated|sudo|superuser|unrestricted)\s+"
          r"(?:privileges|access|rights|permissions)", 0.3),
    _rule("authority", ("=experimental", "=hidden", "=secret", "debug", "unrestricted"),
          r"\b(?:enable|activate|unlock|turn\s+on)\s+(?:experimental|hidden|secret|debug|developer|unrestricted|advanced|beta)\s+(?:features?|mode|capabilities|functions?)", 0.3),
    _rule("authority", ("testing purposes", "a test", "test pipeline", "testing pipeline", "training exercise", "testing exercise", "debug"),
          r"\b(?:for\s+testing\s+purposes|this\s+is\s+(?:only\s+|just\s+)?a\s+test\b|as\s+part\s+of\s+an?\s+(?:training|testing|test)\s+(?:exercise|pipeline|process)|"
          r"test(?:ing)?\s+pipeline|debug(?:ging)?\s+(?:error|mode|session))", 0.25),
    _rule("authority", ("special case", "exception", "override"), r"\b(?:special\s+case|exception|override)\s*:\s*(?:if|when)\b", 0.35, 0.5),
    _rule("authority", ("mistake", "forgot", "=error"),
          r"\b(?:sorry|apologies|oops|my\s+bad)\W+(?:\w+\W+){0,8}?(?:mistake|forgot|error)\W+(?:\w+\W+){0,8}?(?:instructions|ask(?:ed)?\s+you|tell\s+you|told\s+you|prompt)", 0.3),
    _rule("authority", ("urgent", "emergency", "important", "priority", "attention", "critical"),
          r"(?:\*{2,3}|#{2,3}|!{2,3})\s*(?:urgent|emergency|important|priority|attention|critical)\b[^*#!\n]{0,40}(?:\*{2,3}|#{2,3}|!{2,3})?", 0.35),
    _rule("authority", "assigned", r"\byou(?:'ve|\s+have)\s+been\s+assigned\s+(?:a|the|this|an)\s+(?:new\s+)?(?:task|mission|job)", 0.3),
    _rule("authority", ("punish", "fired", "in trouble"),
          r"\b(?:or|otherwise)\s+(?:else\s+)?i\s+(?:will|'ll|am\s+going\s+to)\s+(?:get\s+|be\s+)?(?:punish\w*|fired|in\s+trouble|hurt|killed)", 0.25),
    _rule("authority", ("crucial", "critical", "imperative", "vital", "essential", "extremely important", "very important"),
          r"\b(?:it\s+is|it'?s)\s+(?:crucial|critical|imperative|vital|essential|extremely\s+important|very\s+important)\s+(?:that\s+)?(?:you|to)\s+(?:\w+\W+){0,3}?"
          r"(?:include|do\s+this|follow|comply|output|print|repeat)", 0.25),
    # --- system-prompt extraction --------------------------------------------------------------
    _rule("extraction", ("prompt", "instructions", "system message", "configuration", "=initial", "=original", "=hidden", "=secret", "=internal"),
          r"\b(?:reveal|show|print|output|display|repeat|tell|give|share|leak|dump|write\s+out|list|recite|spell\s+out|what\s+(?:is|are|was|were))\s+"
          r"(?:\w+\W+){0,3}?your\s+(?:\w+\W+){0,2}?(?:system\s+prompt|prompt|instructions|system\s+message|pre-?prompt|configuration|"
          r"(?:initial|original|hidden|secret|internal)\s+\w+)", 0.7),
    _rule("extraction", ("prompt", "system message", "developer message"),
          r"\b(?:reveal|print|output|display|repeat|leak|dump|show)\s+(?:\w+\W+){0,2}?(?:the\s+)?(?:system\s+prompt|system\s+message|initial\s+prompt|"
          r"hidden\s+(?:prompt|instructions)|developer\s+message|pre-?prompt)", 0.6),
    _rule("extraction", ("above", "preceding", "came before", "prior"),
          r"\b(?:repeat|print|output|copy|echo|recite|write)\s+(?:\w+\W+){0,3}?(?:everything|all(?:\s+the)?\s+text|the\s+(?:text|words|content|instructions|message)s?)\s+"
          r"(?:above|before|preceding|prior|that\s+came\s+before)", 0.6),
    _rule("extraction", ("starting with", "beginning with", "starting from"),
          r"\b(?:words|text|everything|instructions)\s+(?:above|before\s+this)\W+(?:\w+\W+){0,2}?(?:starting|beginning)\s+(?:with|from)", 0.6),
    _rule("extraction", ("told", "instructed", "programmed", "prompted"),
          r"\b(?:what|which)\s+(?:were|are|was)\s+you\s+(?:told|instructed|programmed|prompted)\s+(?:to|not|before|initially|originally|at)", 0.5),
    # --- fake chat-template and system delimiters ----------------------------------------------
    _rule("delimiter", "<|",
          r"<\|\s*(?:im_start|im_end|im_sep|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text|end_of_text|eos|bos|fim_\w+)\s*\|>", 0.8),
    _rule("delimiter", "inst]", r"\[/?inst\]", 0.6),
    _rule("delimiter", "sys", r"<<\s*/?sys\s*>>", 0.7),
    _rule("delimiter", "_of_turn", r"<\s*/?\s*(?:start_of_turn|end_of_turn)\s*>", 0.7),
    _rule("delimiter", tuple(f"{h}{w}" for h in ("# ", "#") for w in ("system", "instruction", "assistant", "response", "human", "new instruction", "admin", "developer")),
          r"(?m)^\s*#{1,4}\s*(?:system|instruction|instructions|assistant|response|human|new\s+instructions?|admin|developer)\s*(?:message|prompt|override)?\s*:?\s*$", 0.3, 0.6),
    _rule("delimiter", tuple(f"{o}{w}" for o in "[({<" for w in ("system", "sys", "admin", "developer", "root", " system")),
          r"[\[\(\{<]\s*(?:system|sys|admin|developer|root)(?:\s+(?:message|note|prompt|override|instruction))?\s*[\]\)\}>]", 0.35, 0.6),
    _rule("delimiter", "[system]", r"\[system\]\(#\w+\)", 0.75),
    _rule("delimiter", tuple(f"{o}{sp}end" for o in "<[(-=#" for sp in ("", " ")),
          r"(?:<|\[|\(|-{2,}|={2,}|#{2,})\s*end\s+of\s+(?:session|conversation|context|document|input|prompt|text|instructions|user\s+input|data)\s*(?:>|\]|\)|-{2,}|={2,}|#{2,})", 0.35, 0.5),
    _rule("delimiter", ("system:", "system :", "assistant:", "assistant :", "chatgpt:", "model:"), r"(?m)^\s*(?:system|assistant|chatgpt|model)\s*:", 0.15, 0.5),
    _rule("delimiter", ("user:", "user :", "human:", "human :"), r"(?m)^\s*(?:user|human)\s*:", 0.05, 0.4),
    # "policy puppetry": a fake configuration block that re-declares what the model may say.
    _rule("delimiter", ("=blocked", "=forbidden", "=disallowed", "=banned"),
          r"\b(?:blocked|forbidden|disallowed|banned)[ _-](?:modes|responses|strings|topics|words|outputs)\s*:", 0.4),
    _rule("delimiter", "=allowed", r"\ballowed[ _-](?:modes|responses|strings|topics|words|outputs)\s*:", 0.35),
    _rule("delimiter", ("-config", "_config", "-policy", "_policy", "-settings", "_settings"),
          r"<\s*/?\s*(?:interaction|system|policy|model|ai|assistant)[-_](?:config|configuration|policy|settings|rules)\s*>", 0.5),
    # --- markdown / URL data exfiltration ------------------------------------------------------
    _rule("exfiltration", "![", r"!\[[^\]\n]{0,100}\]\(\s*<?(?:https?:)?//", 0.15),
    _rule("exfiltration", ("](", "]:", "] :"),
          r"(?:\]\(|\]\s*:\s*)<?(?:https?:)?//[^)\s]*?[?&=/][^)\s]*?(?:\[[a-z0-9_ ]{2,30}\]|\{[a-z0-9_ ]{2,30}\}|<[a-z0-9_ ]{2,30}>|\$[a-z_]{2,30})", 0.45),
    _rule("exfiltration", ("summary of", "summarize", "summarise", "contents of", "content of", "history of", "transcript of", "copy of", "details of"),
          r"\b(?:summary|summari[sz]e|contents?|history|transcript|copy|details)\s+of\s+(?:the\s+|this\s+|our\s+|your\s+)?"
          r"(?:page|conversation|chat|discussion|session|previous\s+messages?|context)\b", 0.35),
    _rule("exfiltration", ("previous", "last", "prior", "earlier"),
          r"\b(?:previous|last|prior|earlier)\s+(?:message|messages|response|conversation|chat|prompt)\b", 0.2),
    _rule("exfiltration", ("password", "=secret", "=secrets", "api key", "api_key", "api-key", "apikey", "credential", "access token",
                           "session cookie", "mail address", "personal"),
          r"\b(?:passwords?|secrets?|api[\s_-]?keys?|credentials|access\s+tokens?|session\s+cookies?|e-?mail\s+address(?:es)?|personal\s+(?:data|information|details))\b", 0.15),
    _rule("exfiltration", ("url", "link", "query", "image"),
          r"\b(?:append|add|attach|include|put|insert)\s+(?:\w+\W+){0,4}?(?:to|in|into|at\s+the\s+end\s+of)\s+(?:the\s+)?(?:url|link|query\s+string|image\s+(?:url|link|source))", 0.4),
    _rule("exfiltration", "replace", r"\breplace\s+\[?[a-z_]{2,20}\]?\s+with\b", 0.3),
    _rule("exfiltration", "encod", r"\b(?:base64|url|mime|hex)[- ]?encod\w*", 0.2),
    _rule("exfiltration", ("concat", "join", "combin", "assembl", "together"),
          r"\b(?:concatenat\w*|join|combine|assemble|put\s+together)\s+(?:\w+\W+){0,3}?(?:strings?|parts?|pieces?|fragments?|following)", 0.2),
    _rule("exfiltration", ('","', "','", '", "', "', '"), r"(?:[\"'][^\"'\n]{1,12}[\"']\s*,\s*){6,}", 0.3),
    _rule("exfiltration", ("code block", "codeblock", "code style", "code formatting", "code fence"), r"\b(?:no|not|don'?t|do\s+not|without)\s+(?:use\s+)?(?:a\s+|any\s+)?code\s*(?:style\s+)?(?:block|formatting|fence)s?", 0.25),
    _rule("exfiltration", "spaces", r"\bescape\s+(?:all\s+)?spaces\s+with\b", 0.3),
    _rule("exfiltration", "exfiltrat", r"\bexfiltrat\w*", 0.3),
    # --- active content the model is asked to emit (XSS in the rendered answer) ---------------
    _rule("active_content", ("<script", "< script"), r"<\s*script\b", 0.3),
    _rule("active_content", "javascript", r"javascript\s*:", 0.3),
    _rule("active_content", "javascript", r"\]\(\s*javascript\s*:", 0.7),
    _rule("active_content", ("onerror", "onload", "onmouseover", "onclick", "onfocus", "onblur", "onanimationstart", "ontoggle", "onpointerover", "onbegin"),
          r"<\s*(?:img|svg|body|iframe|video|audio|details|a|input|object|embed|math|image|div|style)\b[^>]{0,200}?\bon[a-z]+\s*=", 0.45),
    _rule("active_content", ("onerror", "onload", "onmouseover", "onclick", "onfocus", "onblur", "onanimationstart", "ontoggle", "onpointerover", "onbegin"), r"\bon(?:error|load|mouseover|click|focus|blur|animationstart|toggle|pointerover)\s*=", 0.35),
    _rule("active_content", "document.", r"\bdocument\.(?:cookie|domain|location)", 0.3),
    _rule("active_content", ("alert", "confirm", "prompt(", "console.log"), r"\b(?:alert|confirm|prompt|console\.log)\s*\(", 0.2),
    _rule("active_content", "data:text/html", r"data:text/html", 0.3),
    _rule("active_content", tuple(f"{d} {n}" for d in ("your", "the") for n in ("response", "output", "answer", "reply")),
          r"\b(?:include|insert|add|embed|output|print|render|put|write|append|display|echo|return|show)\b[^\n]{0,200}?"
          r"(?:in|into|within|to|at\s+the\s+(?:end|beginning|start)\s+of)\s+(?:your|the)\s+(?:response|output|answer|reply)", 0.3),
    _rule("active_content", ("exactly", "verbatim"), r"\b(?:exactly|verbatim)\s+as\s+(?:it\s+is|written|shown|follows|provided|given)", 0.2),
    _rule("active_content", "renders", r"\b(?:ensure|make\s+sure)\s+(?:that\s+)?it\s+renders", 0.25),
    # --- code / query injection through the model ---------------------------------------------
    _rule("code_injection", "exactly",
          r"\b(?:run|execute|perform)\s+(?:the\s+)?following\s+(?:sql\s+)?(?:query|command|statement|code|script)\s+exactly", 0.35),
    _rule("code_injection", "=exactly", r"\b(?:respond|reply|answer|repeat)\s+(?:with\s+)?exactly\s+what\s+follows", 0.3),
    _rule("code_injection", ("drop", "shutdown", "union", "xp_", "waitfor", "sleep", "1=1", "1 = 1", "exec(", "exec ("),
          r"(?:'\s*;\s*(?:drop|shutdown|delete|exec|insert|update)|\bor\s+'?1'?\s*=\s*'?1|union\s+(?:all\s+)?select|xp_cmdshell|waitfor\s+delay|"
          r";\s*shutdown|drop\s+table|drop\s+all\s+(?:\w+\s+)?tables|exec\s*\(|pg_sleep|sleep\s*\(\s*\d+\s*\))", 0.25),
    _rule("code_injection", "{{",
          r"\{\{[^}]{0,200}?(?:__\w+__|\bimport\b|open\s*\(|\bos\.|subprocess|\beval\b|\bexec\b|config\.|self\._)[^}]{0,200}\}\}", 0.45),
    _rule("code_injection", "{%", r"\{%[^%]{0,200}?(?:import|os\.|subprocess)", 0.45),
    _rule("code_injection", ("succeed", "fail"),
          r"\b(?:respond|reply)\s+(?:to\s+the\s+user\s+)?with\s+(?:the\s+string\s+)?['\"]\w+['\"]\s+if\s+(?:the\s+query|it)\s+(?:succeeds|fails)", 0.25),
    # --- instructions addressed to the assistant inside data (indirect injection) --------------
    _rule("indirect", tuple(f"{w} {p}" for w in ("note", "message", "instruction", "instructions", "attention", "important", "reminder",
                                                  "notice", "memo", "directive", "warning") for p in ("to", "for")),
          rf"\b(?:note|message|instructions?|attention|important|reminder|notice|memo|directive|warning)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?{_AI}\b", 0.4, 0.8),
    _rule("indirect", ("ai", "llm", "language model", "assistant", "chatbot", "bot", "agent", "gpt"),
          r"\b(?:if|when)\s+(?:you\s+are|you'?re)\s+(?:an?\s+)?(?:ai|llm|language\s+model|(?:ai\s+)?assistant|chatbot|bot|agent|gpt|large\s+language\s+model)\b", 0.35, 0.75),
    _rule("indirect", _AI_READING_NEEDLES,
          r"\b(?:ai|assistants?|models?|llms?|agents?|bots?|chatbots?)\s+(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|scanning|reviewing|evaluating)\s+(?:this|the|these)\b", 0.35, 0.75),
    _rule("indirect", ("=read", "=see", "=process", "summar", "=encounter", "=parse", "analy", "=review"),
          r"\bwhen\s+(?:you|the\s+(?:ai|assistant|model|llm|agent))\s+(?:read|see|process|summari[sz]e|encounter|parse|analy[sz]e|review)\s+(?:this|these)", 0.35, 0.7),
    _rule("indirect", ("ai", "assistant", "llm", "chatbot", "bot", "agent"),
          r"\bthe\s+(?:ai|assistant|llm|chatbot|bot|agent)\s+(?:must|should|shall|will|needs\s+to|has\s+to|is\s+(?:now\s+)?(?:required|instructed|ordered))\s+(?:now\s+)?(?!be\b)\w+", 0.15, 0.35),
    _rule("indirect", tuple(f"{n} {v}" for n in ("not", "never") for v in ("tell", "inform", "mention", "reveal", "disclose", "alert", "notify", "let")),
          r"\b(?:do\s+not|don'?t|never)\s+(?:tell|inform|mention\s+(?:this\s+)?to|reveal\s+(?:this\s+)?to|disclose\s+(?:this\s+)?to|alert|notify|let)\s+(?:the\s+)?(?:user|human|reader|recipient)", 0.35, 0.7),
    _rule("indirect", ("without telling", "without informing", "without notifying", "without alerting", "without asking"), r"\bwithout\s+(?:telling|informing|notifying|alerting|asking)\s+(?:the\s+)?(?:user|human|reader)", 0.4, 0.7),
    _rule("indirect", ("instead of", "rather than"),
          r"\b(?:instead\s+of|rather\s+than)\s+(?:summari[sz]\w*|translat\w*|answering|evaluating|following|doing\s+(?:that|this|the\s+task))", 0.3, 0.55),
    _rule("indirect", ("told", "asked", "requested", "instructed"),
          r"\b(?:if|when)\s+(?:you\s+are\s+|you'?re\s+)?(?:told|asked|requested|instructed)\s+to\s+(?:summari[sz]e|translate|answer|evaluate|review|analy[sz]e)", 0.3, 0.5),
    _rule("indirect", "asked", r"\b(?:if|when)\s+(?:you\s+are\s+|you'?re\s+)?asked\s+(?:about|how|whether|to|for|if|why)\b", 0.1, 0.35),
    _rule("indirect", tuple(f"{a} {v}" for a in ("simply", "only", "just") for v in ("respond", "reply", "answer", "say", "output", "print", "write", "state", "return")),
          r"\b(?:simply|only|just)\s+(?:respond|reply|answer|say|output|print|write|state|return)\s+(?:with\s+)?[\"'“]", 0.2, 0.45),
    _rule("indirect", "focus", r"\bfocus\s+(?:only|exclusively|solely)\s+on\b", 0.1, 0.35),
    _rule("indirect", ("invisible", "hidden", "visible", "white"),
          r"\b(?:(?:invisible|hidden|not\s+visible)\s+(?:to|from)\s+(?:the\s+)?(?:humans?|users?|readers?|people|recruiters?)|(?:white|hidden|invisible)[- ]text)", 0.4, 0.7),
    _rule("indirect", ("visible", "readable"), rf"\b(?:visible|readable)\s+(?:only\s+)?to\s+(?:the\s+)?(?:{_AI}|machines?)\b", 0.5, 0.8),
    _rule("indirect", "deviate", r"\b(?:may|must|should|will|can)\s+not\s+deviate", 0.3, 0.45),
    _rule("indirect", tuple(f"following {w}" for w in ("sentence", "text", "phrase", "string", "word", "line")),
          r"\b(?:repeat|say|print|output)\s+(?:\w+\W+){0,2}?(?:the\s+)?following\s+(?:sentence|text|phrase|string|words?|line)", 0.1, 0.3),
    _rule("indirect", ("ignor", "disregard"),
          r"\b(?:ignor\w*|disregard\w*)\s+(?:\w+\W+){0,3}?(?:negative|bad|other|remaining|following)\s+(?:indicators|information|content|parts|sections|details|data|snippets|documents)", 0.4, 0.6),
    _rule("indirect", ("if user", "if the user", "when the user", "when user"),
          r"\b(?:if|when)\s+(?:the\s+)?user\s+(?:asks|requests|wants|says|queries|inquires)\b", 0.15, 0.5),
    _rule("indirect", ("=reply", "=respond", "=answer", "=output", "=print", "=say"),
          r"\b(?:reply|respond|answer|output|print|say)\s+(?:with\s+)?only\s+(?:the\s+following|this|these)\b", 0.2, 0.45),
    _rule("indirect", "nothing else", r"\b(?:and|with)\s+(?:absolutely\s+)?nothing\s+else\b", 0.1, 0.3),
    _rule("indirect", ("for automated", "for ai "),
          r"\bfor\s+(?:automated|ai)\s+(?:\w+\s+)?(?:screening|analysis|review|evaluation|processing|readers?|systems?|software|tools?)", 0.3, 0.6),
    _rule("indirect", ("=end", "=beginning", "=start"),
          r"\bat\s+the\s+(?:end|beginning|start)\s+of\s+(?:your|each|every)\s+(?:response|output|answer|reply|message)", 0.3),
    _rule("indirect", ("assistant:", "ai:", "model:", "chatbot:", "assistant :"), r"(?m)^\s*(?:assistant|ai|model|chatbot)\s*:\s*<[^>\n]{3,80}>", 0.3, 0.5),
)
