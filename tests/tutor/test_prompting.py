import pytest

from tutor.prompting import (
    SYSTEM_PROMPT,
    Grounding,
    MessageTooLong,
    build_messages,
    merge_turns,
    prompt_budget,
)
from tutor.providers import MESSAGE_OVERHEAD_TOKENS, estimate_tokens


def test_system_prompt_asks_for_guidance_not_answers():
    chat = build_messages("mathematics", [("student", "solve 2x + 3 = 7")], 3000)
    assert chat[0]["role"] == "system" and "Never state the final answer" in chat[0]["content"]
    assert "mathematics" in chat[0]["content"] and SYSTEM_PROMPT.split("\n")[0][:20] in chat[0]["content"]
    assert "$3x + 5 = 20$" in chat[0]["content"]  # maths as LaTeX, which the chat renders
    assert chat[1] == {"role": "user", "content": "solve 2x + 3 = 7"}


def test_history_is_cut_to_the_budget_newest_kept():
    history = [("student" if i % 2 == 0 else "tutor", f"turn {i} " + "x" * 400) for i in range(21)]
    chat = build_messages("science", history, token_budget=900)
    kept = [m["content"] for m in chat[1:]]
    assert kept[-1].startswith("turn 20") and 1 < len(kept) < 21
    assert chat[1]["role"] == "user"  # never starts with a dangling tutor turn
    assert sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in chat) <= 900


def test_a_newest_message_that_cannot_fit_is_refused_not_sent():
    with pytest.raises(MessageTooLong):
        build_messages("english", [("student", "y" * 10_000)], token_budget=300)


def test_a_long_old_message_is_dropped_so_the_session_goes_on():
    """The pasted table that failed stays in the history; the next short message still fits."""
    table = "\n".join(f"| {i} | {i * 37} | {i * 0.5} |" for i in range(600))
    history = [("student", table), ("student", "ok, what is a mean?")]
    chat = build_messages("mathematics", history, token_budget=prompt_budget(4096, 800))
    assert [m["role"] for m in chat] == ["system", "user"] and chat[1]["content"] == "ok, what is a mean?"


def test_consecutive_turns_of_one_role_are_merged():
    """After a failed reply the student's two messages are next to each other: strict chat
    templates (Gemma, Mistral) reject two user turns in a row."""
    chat = build_messages(
        "mathematics", [("student", "solve 2x = 8"), ("student", "hello?"), ("tutor", "Hi!"), ("student", "x=4?")], 3000
    )
    roles = [m["role"] for m in chat]
    assert roles == ["system", "user", "assistant", "user"]
    assert chat[1]["content"] == "solve 2x = 8\n\nhello?"
    assert merge_turns([{"role": "user", "content": "a"}]) == [{"role": "user", "content": "a"}]


def test_grade_level_and_topic_grounding_reach_the_system_prompt():
    g = Grounding("Fractions", "A fraction names equal parts of a whole.", ("adding tops and bottoms",))
    system = build_messages("mathematics", [("student", "3/4 + 1/8?")], 3000, grade_level=6, grounding=g)[0]["content"]
    assert "grade 6" in system and "Fractions" in system and "equal parts" in system
    assert "adding tops and bottoms" in system


def test_grounding_is_dropped_when_the_window_is_small():
    g = Grounding("Fractions", "word " * 2000)
    chat = build_messages("mathematics", [("student", "3/4 + 1/8?")], 420, grounding=g)
    assert "Fractions" not in chat[0]["content"]


def test_the_budget_leaves_room_for_the_reply():
    assert prompt_budget(4096, 800) < 4096 - 800
    assert prompt_budget(4096, 800) > 2500


def test_token_estimate_is_conservative_on_maths_and_numbers():
    # Real tokenizers give digits and symbols a token each; four characters a token undercounts.
    assert estimate_tokens("3,400.25 + 17") >= 10
    assert estimate_tokens("The quick brown fox jumps over the lazy dog.") >= 11
