from tutor.prompting import SYSTEM_PROMPT, build_messages


def test_system_prompt_asks_for_guidance_not_answers():
    chat = build_messages("mathematics", [("student", "solve 2x + 3 = 7")], 3000)
    assert chat[0]["role"] == "system" and "Never state the final answer" in chat[0]["content"]
    assert "mathematics" in chat[0]["content"] and SYSTEM_PROMPT.split("\n")[0][:20] in chat[0]["content"]
    assert chat[1] == {"role": "user", "content": "solve 2x + 3 = 7"}


def test_history_is_cut_to_the_budget_newest_kept():
    history = [("student" if i % 2 == 0 else "tutor", f"turn {i} " + "x" * 400) for i in range(20)]
    chat = build_messages("science", history, token_budget=600)
    kept = [m["content"] for m in chat[1:]]
    assert kept[-1].startswith("turn 19") and len(kept) < 20
    assert chat[1]["role"] == "user"  # never starts with a dangling tutor turn
    assert sum(len(m["content"]) // 4 for m in chat) <= 600 + 110


def test_newest_message_kept_even_over_budget():
    chat = build_messages("english", [("student", "y" * 10_000)], token_budget=300)
    assert chat[-1]["content"] == "y" * 10_000
