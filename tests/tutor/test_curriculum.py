"""The shipped curriculum data, its validation, and the deterministic topic matcher.

Plain tests: no database or Redis, so they run in well under a second.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from tutor.curriculum import (
    DEFAULT_DIRECTORY,
    CheckQuestion,
    Curriculum,
    CurriculumError,
    Subject,
    Topic,
    get_curriculum,
    load_curriculum,
    match_topics,
    normalize_text,
    subjects_payload,
    topic_count,
)
from tutor.models import SessionTopic

REQUIRED_MATH = {
    "arithmetic",
    "fractions",
    "percentages",
    "ratios and rates",
    "linear equations",
    "expanding brackets",
    "area and perimeter",
    "pythagorean theorem",
}


@pytest.fixture(scope="module")
def curriculum() -> Curriculum:
    return load_curriculum()


# --------------------------------------------------------------------------- shipped data


def test_shipped_curriculum_loads(curriculum: Curriculum) -> None:
    assert {"mathematics", "science", "english"} <= set(curriculum.subjects)
    assert len(curriculum.subjects) >= 3
    for subject in curriculum.subjects.values():
        assert len(subject.topics) >= 8, subject.id
    assert {t.id for t in curriculum.subjects["mathematics"].topics} >= REQUIRED_MATH


def test_no_module_shadows_the_package() -> None:
    assert not (DEFAULT_DIRECTORY.parent.parent / "curriculum.py").exists()
    assert DEFAULT_DIRECTORY.is_dir()


def test_every_topic_is_complete(curriculum: Curriculum) -> None:
    for subject in curriculum.subjects.values():
        assert subject.name and subject.description
        for topic in subject.topics:
            where = f"{subject.id}/{topic.id}"
            assert SessionTopic.clean(topic.id) == topic.id, where
            assert topic.name and topic.keywords, where
            sentences = [s for s in re.split(r"(?<=[.!?])\s+", topic.explanation) if s]
            assert 2 <= len(sentences) <= 5, where
            assert len([line for line in topic.worked_example.splitlines() if line.strip()]) >= 4, where
            assert len(topic.hints) >= 3 and all(topic.hints), where
            assert len(topic.check_questions) >= 2, where
            for check in topic.check_questions:
                assert isinstance(check, CheckQuestion)
                assert check.question and check.answer, where
                assert len(check.answer) <= 40, where  # short enough to compare
            assert topic.misconceptions, where


def test_lookups_and_payload(curriculum: Curriculum) -> None:
    maths = curriculum.subject("Mathematics ")
    assert isinstance(maths, Subject)
    fractions = maths.topic("  Fractions")
    assert isinstance(fractions, Topic) and fractions.id == "fractions"
    assert maths.topic("astrology") is None
    assert curriculum.topic("science", "photosynthesis") is not None
    assert curriculum.topic("history", "photosynthesis") is None

    assert topic_count("mathematics", curriculum) == len(maths.topics)
    assert topic_count("mathematics") == len(get_curriculum().subjects["mathematics"].topics)
    assert topic_count("underwater basket weaving") == 0

    payload = subjects_payload()
    assert [s["id"] for s in payload] == ["english", "mathematics", "science"]  # file-name order
    assert payload == subjects_payload()  # stable
    first = payload[1]
    assert set(first) == {"id", "name", "description", "topics", "starters"}
    assert len(first["starters"]) == 3 and all(first["starters"])
    assert first["topics"][0] == {"id": "arithmetic", "name": "Arithmetic"}
    assert get_curriculum() is get_curriculum()


# --------------------------------------------------------------------------- validation

GOOD_TOPIC = """
[[topics]]
id = "{id}"
name = "Topic {id}"
keywords = ["{id}", "another phrase"]
explanation = "First sentence. Second sentence."
worked_example = "1. Step one.\\n2. Step two."
hints = ["general", "more specific", "most specific"]
check_questions = [{{ question = "Q1?", answer = "1" }}, {{ question = "Q2?", answer = "2" }}]
"""


def subject_file(subject_id: str = "maths", topics: str | None = None) -> str:
    if topics is None:
        topics = GOOD_TOPIC.format(id="alpha") + GOOD_TOPIC.format(id="beta")
    return f'id = "{subject_id}"\nname = "Maths"\ndescription = "Numbers."\n' + topics


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_for(directory: Path) -> str:
    with pytest.raises(CurriculumError) as info:
        load_curriculum(directory)
    return str(info.value)


def test_a_valid_directory_loads(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", subject_file())
    write(tmp_path, ".#maths.toml", "not toml at all [")  # editor lock files are ignored
    curriculum = load_curriculum(tmp_path)
    assert list(curriculum.subjects) == ["maths"]
    assert [t.id for t in curriculum.subjects["maths"].topics] == ["alpha", "beta"]
    assert match_topics("tell me about another phrase", curriculum=curriculum) == ["alpha", "beta"]


def test_bad_toml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "mathematics.toml", subject_file() + "\nthis is = = broken\n")
    message = error_for(tmp_path)
    assert message.startswith("mathematics.toml: not valid TOML:")
    assert re.search(r"line \d+", message)


def test_missing_hints(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha").replace('hints = ["general", "more specific", "most specific"]\n', "")
    write(tmp_path, "mathematics.toml", subject_file(topics=GOOD_TOPIC.format(id="zero") + broken))
    message = error_for(tmp_path)
    assert message.startswith("mathematics.toml: topics[1].hints: missing required field")
    assert "'alpha'" in message


def test_too_few_hints(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha").replace(', "most specific"]', "]")
    write(tmp_path, "mathematics.toml", subject_file(topics=broken))
    assert error_for(tmp_path).startswith(
        "mathematics.toml: topics[0].hints: must be a list of at least 3 non-empty strings"
    )


def test_blank_hint(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha").replace('"most specific"', '"   "')
    write(tmp_path, "m.toml", subject_file(topics=broken))
    assert error_for(tmp_path).startswith("m.toml: topics[0].hints: must be a list")


def test_duplicate_topic_id(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", subject_file(topics=GOOD_TOPIC.format(id="alpha") * 2))
    message = error_for(tmp_path)
    assert message.startswith("maths.toml: topics[1].id: duplicate topic id 'alpha'")
    assert "topics[0]" in message


def test_keywords_wrong_type(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha").replace('keywords = ["alpha", "another phrase"]', 'keywords = "alpha"')
    write(tmp_path, "maths.toml", subject_file(topics=broken))
    assert error_for(tmp_path).startswith("maths.toml: topics[0].keywords: must be a list")


def test_keyword_with_nothing_to_match(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha").replace('"another phrase"', '"?!"')
    write(tmp_path, "maths.toml", subject_file(topics=broken))
    assert error_for(tmp_path).startswith("maths.toml: topics[0].keywords[1]:")


def test_duplicate_subject_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a-maths.toml", subject_file("maths"))
    write(tmp_path, "b-maths.toml", subject_file("maths"))
    message = error_for(tmp_path)
    assert message.startswith("b-maths.toml: id: duplicate subject id 'maths'")
    assert "a-maths.toml" in message


def test_unknown_topic_field(tmp_path: Path) -> None:
    broken = GOOD_TOPIC.format(id="alpha") + 'difficulty = "hard"\n'
    write(tmp_path, "maths.toml", subject_file(topics=broken))
    assert error_for(tmp_path).startswith("maths.toml: topics[0].difficulty: unknown field")


def test_starters_are_optional_and_checked(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", subject_file())
    maths = load_curriculum(tmp_path).subjects["maths"]
    assert maths.suggested_starters() == ["Q1?", "Q1?"]  # no starters: the topics' first check questions
    write(tmp_path, "maths.toml", 'starters = ["What is 1 + 1?"]\n' + subject_file())
    assert load_curriculum(tmp_path).subjects["maths"].suggested_starters() == ["What is 1 + 1?"]
    write(tmp_path, "maths.toml", "starters = [3]\n" + subject_file())
    assert error_for(tmp_path).startswith("maths.toml: starters: must be a list")


def test_unknown_subject_field(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", 'colour = "blue"\n' + subject_file())
    assert error_for(tmp_path).startswith("maths.toml: colour: unknown field")


def test_missing_subject_field(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", subject_file().replace('description = "Numbers."\n', ""))
    assert error_for(tmp_path).startswith("maths.toml: description: missing required field")


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('id = "maths"', 'id = "Maths!"', "id"),
        ('id = "alpha"', 'id = "Alpha  Beta"', "topics[0].id"),
        ('name = "Topic alpha"', "name = 3", "topics[0].name"),
        ('explanation = "First sentence. Second sentence."', 'explanation = ""', "topics[0].explanation"),
        ('{ question = "Q2?", answer = "2" }', '{ question = "Q2?" }', "topics[0].check_questions[1].answer"),
        (', { question = "Q2?", answer = "2" }', "", "topics[0].check_questions"),
        ('answer = "2" }', 'answer = "2", points = 1 }', "topics[0].check_questions[1].points"),
    ],
)
def test_field_errors_name_the_field(tmp_path: Path, old: str, new: str, field: str) -> None:
    text = subject_file(topics=GOOD_TOPIC.format(id="alpha"))
    assert old in text
    write(tmp_path, "maths.toml", text.replace(old, new, 1))
    message = error_for(tmp_path)
    assert message.startswith(f"maths.toml: {field}: "), message
    with pytest.raises(CurriculumError) as info:
        load_curriculum(tmp_path)
    assert info.value.file == "maths.toml" and info.value.field == field


def test_topics_must_be_tables(tmp_path: Path) -> None:
    write(tmp_path, "maths.toml", subject_file(topics='topics = ["alpha"]\n'))
    assert error_for(tmp_path).startswith("maths.toml: topics: must be a non-empty array of tables")


def test_empty_or_missing_directory(tmp_path: Path) -> None:
    assert "no subject files" in error_for(tmp_path)
    assert "not found" in error_for(tmp_path / "nowhere")


def test_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "maths.toml").write_bytes(b'id = "caf\xe9"\n')
    assert error_for(tmp_path).startswith("maths.toml: not valid UTF-8")


# --------------------------------------------------------------------------- matcher

MESSAGES = [
    # mathematics
    ("How do I solve 2x + 3 = 7?", "linear equations"),
    ("3x = 12, what is x?", "linear equations"),
    ("solve 4(x - 1) = 12", "linear equations"),
    ("what's 3/4 + 1/8", "fractions"),
    ("simplify 6/8", "fractions"),
    ("how do I multiply fractions", "fractions"),
    ("What is 20% of 50?", "percentages"),
    ("how do I work out a percentage increase", "percentages"),
    ("find the hypotenuse of a triangle with sides 3 and 4", "pythagorean theorem"),
    ("is a² + b² = c² always true?", "pythagorean theorem"),
    ("expand (x + 2)(x + 3)", "expanding brackets"),
    ("how do I multiply out 3(x + 4)", "expanding brackets"),
    ("a car goes 120 km in 2 hours, what is its speed in km/h", "ratios and rates"),
    ("share £35 in the ratio 3:4", "ratios and rates"),
    ("what is the area of a rectangle 8 cm by 5 cm", "area and perimeter"),
    ("how do I find the perimeter of a square", "area and perimeter"),
    ("what is 12 * 7", "arithmetic"),
    ("What is 12 × 7?", "arithmetic"),
    ("what is 15 + 27", "arithmetic"),
    ("how do I do long division", "arithmetic"),
    ("find the mean of 4, 8, 3, 8, 7", "averages"),
    # science
    ("how do plants make food", "photosynthesis"),
    ("What does chlorophyll do?", "photosynthesis"),
    ("what does the nucleus do in a cell", "cells"),
    ("what is Newton's second law", "forces and motion"),
    ("why does friction slow things down", "forces and motion"),
    ("what is kinetic energy", "energy"),
    ("why does ice melt", "states of matter"),
    ("how are clouds formed", "the water cycle"),
    ("what's the difference between series and parallel circuits", "electric circuits"),
    ("how do I balance a chemical equation", "chemical reactions"),
    ("what is a food chain", "ecosystems"),
    ("what do decomposers do?", "ecosystems"),
    # english
    ("when do I use a semicolon", "punctuation"),
    ("its or it's??", "punctuation"),
    ("what is a metaphor", "figurative language"),
    ("what's the difference between a simile and a metaphor", "figurative language"),
    ("is 'quickly' an adverb", "parts of speech"),
    ("what's the past tense of go", "tenses"),
    ("how do I structure my essay", "essay structure"),
    ("how do you spell necessary", "spelling"),
    ("should I say we was or we were", "subject-verb agreement"),
    ("how do I find the main idea of a passage", "reading comprehension"),
    ("what is a complex sentence", "sentence structure"),
]

OFF_TOPIC = [
    "what's your favourite football team",
    "hello",
    "",
    "   ",
    "tell me a joke",
    "what time is it?",
    "🙂🙂🙂",
]


@pytest.mark.parametrize(("message", "expected"), MESSAGES)
def test_matcher_finds_the_topic(curriculum: Curriculum, message: str, expected: str) -> None:
    found = match_topics(message, curriculum=curriculum)
    assert found and found[0] == expected, found
    assert len(found) <= 3
    # Restricting to the topic's own subject keeps it on top.
    subject = next(s.id for s in curriculum.subjects.values() if s.topic(expected))
    assert match_topics(message, subject, curriculum)[0] == expected


def test_matcher_table_covers_every_subject(curriculum: Curriculum) -> None:
    expected = {topic for _, topic in MESSAGES}
    for subject in ("mathematics", "science", "english"):
        assert sum(1 for t in curriculum.subjects[subject].topics if t.id in expected) >= 8
    assert expected >= REQUIRED_MATH


@pytest.mark.parametrize("message", OFF_TOPIC)
def test_off_topic_messages_match_nothing(curriculum: Curriculum, message: str) -> None:
    assert match_topics(message, curriculum=curriculum) == []


def test_results_are_valid_session_topics(curriculum: Curriculum) -> None:
    ids = {t.id for s in curriculum.subjects.values() for t in s.topics}
    for message, _ in MESSAGES:
        for topic in match_topics(message, curriculum=curriculum):
            assert topic in ids and SessionTopic.clean(topic) == topic


def test_subject_restriction(curriculum: Curriculum) -> None:
    assert match_topics("what is a metaphor", "mathematics", curriculum) == []
    assert match_topics("what is a metaphor", " English ", curriculum) == ["figurative language"]
    assert match_topics("what is speed", "mathematics", curriculum) == ["ratios and rates"]
    assert match_topics("what is speed", "science", curriculum) == ["forces and motion"]
    assert match_topics("how do I solve 2x + 3 = 7", "science", curriculum) == []
    assert match_topics("what is a metaphor", "history", curriculum) == []


def test_several_topics_best_first(curriculum: Curriculum) -> None:
    assert match_topics("convert 3/4 to a percentage", curriculum=curriculum) == ["fractions", "percentages"]
    # Both topics teach speed; their whole texts decide which is first, the same way every run.
    assert sorted(match_topics("what is speed", curriculum=curriculum)) == ["forces and motion", "ratios and rates"]


def test_structures_are_not_fooled(curriculum: Curriculum) -> None:
    # A sum with an "x" for times is arithmetic, a formula without numbers is not an equation.
    assert match_topics("what is 12 x 7 = ?", "mathematics", curriculum) == ["arithmetic"]
    assert "linear equations" not in match_topics("what is f = ma", curriculum=curriculum)
    assert match_topics("x² = 9", "mathematics", curriculum) != ["linear equations"]
    # Fractions written with Unicode are still fractions.
    assert match_topics("what is ½ + ¼", curriculum=curriculum) == ["fractions"]


def test_matcher_is_deterministic(curriculum: Curriculum) -> None:
    again = load_curriculum()
    for message, _ in MESSAGES:
        first = match_topics(message, curriculum=curriculum)
        assert all(match_topics(message, curriculum=curriculum) == first for _ in range(3))
        assert match_topics(message, curriculum=again) == first
        assert match_topics(message) == first  # the cached default curriculum


def test_matcher_ignores_case_spacing_and_punctuation(curriculum: Curriculum) -> None:
    assert match_topics("WHAT   IS A  METAPHOR?!", curriculum=curriculum) == ["figurative language"]
    assert match_topics("Pythagoras' theorem", curriculum=curriculum) == ["pythagorean theorem"]
    assert match_topics("right-angled triangles", curriculum=curriculum) == ["pythagorean theorem"]


def test_normalize_text_keeps_maths() -> None:
    assert normalize_text("  Solve 2x+3=7!  ") == "solve 2x+3=7"
    assert normalize_text("What's 3/4 × 2?") == "what's 3/4 * 2"
    assert normalize_text("Café, 1,000 people; right-angled.") == "cafe 1000 people right angled"
    assert normalize_text("a² + b²") == "a^2 + b^2"


def test_long_messages_are_bounded(curriculum: Curriculum) -> None:
    text = "photosynthesis " + "blah " * 50_000
    assert match_topics(text, curriculum=curriculum) == ["photosynthesis"]


# --------------------------------------------------------------------------- CURRICULUM_DIR


def test_curriculum_dir_setting_replaces_the_shipped_subjects(app, tmp_path: Path) -> None:
    """A deployment keeps its subjects outside the source tree: CURRICULUM_DIR."""
    from app import create_app
    from foundation.config import load_settings
    from tests.conftest import TEST_CONFIG
    from tutor.curriculum import use_directory

    settings = load_settings({"CURRICULUM_DIR": f" {tmp_path} "})
    assert Path(settings.CURRICULUM_DIR) == tmp_path
    write(tmp_path, "history.toml", subject_file("history"))
    try:
        other = create_app({**TEST_CONFIG, "CURRICULUM_DIR": str(tmp_path)})
        assert list(get_curriculum().subjects) == ["history"]
        with other.test_client() as client:
            assert [s["id"] for s in client.get("/api/v1/subjects").get_json()] == ["history"]

        write(tmp_path, "broken.toml", subject_file("broken") + "\nthis is = = broken\n")
        with pytest.raises(CurriculumError, match=r"^broken\.toml: not valid TOML"):
            create_app({**TEST_CONFIG, "CURRICULUM_DIR": str(tmp_path)})
        with pytest.raises(CurriculumError, match="not found"):
            create_app({**TEST_CONFIG, "CURRICULUM_DIR": str(tmp_path / "nowhere")})
        assert list(get_curriculum().subjects) == ["history"]  # a failed start changes nothing
    finally:
        use_directory(None)
    assert "mathematics" in get_curriculum().subjects


# --------------------------------------------------------------------------- whole-text search


@pytest.mark.parametrize(
    ("message", "subject", "expected"),
    [
        ("what is photosynthsis", "science", "photosynthesis"),  # a typo: one letter missing
        ("how does evaparation work", "science", "the water cycle"),  # one letter wrong
        ("whats a fracton", "mathematics", "fractions"),
        ("why is the sky blue?", "science", "light"),
        ("why do we have seasons?", "science", "earth and space"),
        ("why does ice float?", "science", "states of matter"),
        ("is 'their going to the park' correct?", "english", "homophones"),
        ("what's the difference between your and you're", "english", "homophones"),
    ],
)
def test_real_phrasing_and_typos_find_the_topic(curriculum: Curriculum, message, subject, expected) -> None:
    assert match_topics(message, subject, curriculum)[0] == expected


def test_whole_text_counts_beyond_the_keywords(tmp_path: Path) -> None:
    """A word only in a topic's explanation finds it; a word every topic uses does not."""
    topic = GOOD_TOPIC.format(id="alpha").replace("First sentence.", "Glaciers carve valleys.")
    write(tmp_path, "maths.toml", subject_file(topics=topic + GOOD_TOPIC.format(id="beta")))
    curriculum = load_curriculum(tmp_path)
    assert match_topics("how do glaciers carve valleys", curriculum=curriculum) == ["alpha"]
    assert match_topics("glacers", curriculum=curriculum) == ["alpha"]
    assert match_topics("second sentence", curriculum=curriculum) == []  # in both topics: no evidence
