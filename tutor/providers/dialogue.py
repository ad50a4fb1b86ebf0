"""What a student's message *does*, before what it is about: the offline tutor's dialogue acts.

"hi", "thanks", "I don't get it" and "just tell me" carry no topic, so matching them against
the curriculum can only go wrong ("I'm not sure that message is about mathematics"). The
builtin tutor reads the act first and the topic second. Patterns are deliberately plain
regular expressions over the lower-cased message: the same message always gets the same act.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Act(StrEnum):
    GREETING = "greeting"
    THANKS = "thanks"
    GOODBYE = "goodbye"
    JUST_TELL = "just tell me"  # asks for the answer outright
    CONFUSED = "confused"  # "I don't understand", "still stuck", "another hint"
    NEXT = "next"  # "and then?", "what next"
    ACK = "ack"  # "ok", "yes", "got it"
    QUESTION = "question"  # a concept question: what / why / how / when / difference between
    OTHER = "other"  # a statement, an answer, working, or a problem


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_GREETING_WORDS = (
    r"(?:hi+|hello+|hey+|hiya|howdy|yo|greetings|good\s+(?:morning|afternoon|evening|day)|hi\s+there|hello\s+there)"
)
_GREETING = _re(rf"^{_GREETING_WORDS}(?:\s+(?:there|tutor|sir|miss|teacher|everyone|again))?\W*$")
_GREETING_PREFIX = _re(rf"^{_GREETING_WORDS}(?:\s+(?:there|tutor|sir|miss|teacher))?\s*[,.!:;-]+\s*")
_THANKS = _re(
    r"^(?:(?:ok(?:ay)?|great|cool|nice|awesome|perfect|got it|that helps|that helped|brilliant)[\s,!.]*)?"
    r"(?:thanks|thank\s*you|thx|ty|cheers|ta|many thanks)\b[^?]{0,40}$"
)
_GOODBYE = _re(
    r"^(?:(?:ok(?:ay)?|thanks|thank you)[\s,!.]*)?(?:bye|goodbye|good\s*bye|see\s+(?:you|ya)|cya|good\s*night|"
    r"that'?s all|i'?m done|i am done|gotta go|got to go|i have to go)\b[^?]{0,30}$"
)
_JUST_TELL = _re(
    r"\b(?:just\s+(?:tell|give|show)\s+me|(?:tell|give|show)\s+me\s+the\s+(?:answer|solution)|"
    r"what'?s\s+the\s+answer|what\s+is\s+the\s+answer|i\s+give\s+up|(?:solve|do)\s+it\s+for\s+me|"
    r"can\s+you\s+(?:just\s+)?(?:solve|do)\s+(?:it|this)|just\s+the\s+answer|answer\s+please)\b"
)
_CONFUSED = _re(
    r"\b(?:(?:don'?t|dont|do\s+not|didn'?t|still\s+don'?t)\s+(?:get|understand|know|see)|not\s+understand|"
    r"confus\w*|stuck|i'?m\s+lost|i\s+am\s+lost|no\s+idea|not\s+sure|what\s+do\s+you\s+mean|makes\s+no\s+sense|"
    r"doesn'?t\s+make\s+sense|explain\s+(?:it\s+|that\s+)?again|say\s+(?:it|that)\s+again|another\s+hint|"
    r"more\s+help|(?:a|one\s+more|give\s+me\s+a)\s+hint|hint\s+please|help\s+me|can\s+you\s+help|i\s+need\s+help|"
    r"huh|still)\b|^\s*(?:\?+|help|hint|what\??)\s*$"
)
_NEXT = _re(
    r"^(?:and\s+then|then\s+what|what\s+next|what'?s\s+next|next|next\s+step|what\s+now|now\s+what|"
    r"(?:ok(?:ay)?|right|done|yes)[\s,]+(?:what\s+)?next|what\s+do\s+i\s+do\s+next|what\s+should\s+i\s+do\s+next)\W*$"
)
_ACK = _re(
    r"^(?:ok(?:ay)?|k|yes|yeah|yep|yup|sure|right|alright|all\s+right|got\s+it|i\s+see|cool|fine|ready|go\s+on|"
    r"let'?s\s+go|lets\s+go|sounds\s+good|makes\s+sense|oh|ah|ohh?\s+ok(?:ay)?)\W*$"
)
_QUESTION = _re(
    r"^(?:what|what'?s|whats|why|how|when|which|where|who|whose|explain|define|describe|tell\s+me\s+about|"
    r"can\s+you\s+explain|could\s+you\s+explain|is\s+it|is\s+there|are\s+there|do|does|should|can|could|is|are)\b"
    r"|\bdifference\s+between\b|\bwhat\s+does\b.*\bmean\b|\?\s*$"
)


def normalise(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").replace("‘", "'").split())


def strip_greeting(text: str) -> str:
    """ "Hi! how do I add fractions" -> "how do I add fractions" (the greeting alone stays)."""
    stripped = _GREETING_PREFIX.sub("", text.strip(), count=1) if not _GREETING.match(normalise(text)) else text
    return stripped or text


def dialogue_act(text: str) -> Act:
    """The act of one student message (see :class:`Act`)."""
    t = normalise(text)
    if not t:
        return Act.OTHER
    for act, pattern in (
        (Act.GREETING, _GREETING),
        (Act.GOODBYE, _GOODBYE),
        (Act.THANKS, _THANKS),
        (Act.JUST_TELL, _JUST_TELL),
        (Act.NEXT, _NEXT),
        (Act.ACK, _ACK),
        (Act.CONFUSED, _CONFUSED),
        (Act.QUESTION, _QUESTION),
    ):
        if pattern.search(t):
            return act
    return Act.OTHER
