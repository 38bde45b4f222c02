"""Answer extraction over real-world answer styles; unparseable stays None, never a default."""
import pytest

from medjax.eval.extraction import extract_choice

FOUR = {"A": "Disclose the error to the patient", "B": "Tell the attending that he cannot fail to disclose",
        "C": "Report the physician to the ethics committee", "D": "Refuse to dictate the operative report"}
FIVE = {"A": "原发病", "B": "出血部位", "C": "出血量", "D": "在胃内停留时间", "E": "以上均非"}
WORDS = {"yes": "yes", "no": "no", "maybe": "maybe"}

CASES = [
    # English statements
    ("The answer is (C)", FOUR, "C"),
    ("The answer is C.", FOUR, "C"),
    ("Answer: B", FOUR, "B"),
    ("the correct answer is **D**", FOUR, "D"),
    ("Final answer: (A) Disclose the error", FOUR, "A"),
    ("Option C is correct because ethics committees...", FOUR, "C"),
    ("A is wrong since ... B is wrong ... so the answer is D.", FOUR, "D"),
    ("Let's think. The answer is B. On reflection, the answer is C.", FOUR, "C"),
    ("The correct options are A and C", FIVE, "AC"),
    ("Answer: A, C and D", FIVE, "ACD"),
    # leading labels
    ("C", FOUR, "C"),
    ("C. Report the physician to the ethics committee", FOUR, "C"),
    ("(B)", FOUR, "B"),
    ("B) because", FOUR, "B"),
    ("ACD", FIVE, "ACD"),
    ("D\n\nExplanation: ...", FOUR, "D"),
    ("C 出血量", FIVE, "C"),
    # Chinese statements
    ("答案：B", FIVE, "B"),
    ("答案是：E", FIVE, "E"),
    ("正确答案为A、C、D", FIVE, "ACD"),
    ("故选D。", FIVE, "D"),
    ("本题选C，因为出血量决定表现", FIVE, "C"),
    ("上消化道出血表现主要取决于出血量，所以答案是C", FIVE, "C"),
    ("选项B正确", FIVE, "B"),
    # the option's own text
    ("I would Report the physician to the ethics committee.", FOUR, "C"),
    ("主要取决于在胃内停留时间", FIVE, "D"),
    # PubMedQA words
    ("Yes, tailored interventions increase use.", WORDS, "yes"),
    ("Based on the abstract, the answer is maybe.", WORDS, "maybe"),
    ("no", WORDS, "no"),
    ("Answer: No", WORDS, "no"),
]


@pytest.mark.parametrize("text,options,expected", CASES)
def test_extracts(text, options, expected):
    got = extract_choice(text, options)
    assert got is not None, text
    assert "".join(sorted(got)) == expected


UNPARSEABLE = [
    ("Answer: Dementia is likely", FOUR),  # a word starting with a capital D is not option D
    ("A patient like this needs care", FOUR),  # the article "A" is not option A
    ("B12 deficiency", FOUR),
    ("I am not sure.", FOUR),
    ("", FOUR),
    ("这道题很难", FIVE),
    ("The abstract does not say.", WORDS),
    ("Answer: F", FOUR),  # not an option
]


@pytest.mark.parametrize("text,options", UNPARSEABLE)
def test_unparseable_is_none(text, options):
    assert extract_choice(text, options) is None


def test_option_text_inside_another_is_not_evidence():
    options = {"A": "pain", "B": "chest pain", "C": "fever", "D": "cough"}
    assert extract_choice("The patient reports chest pain", options) == {"B"}
