"""Login names and the GECOS field: ASCII, valid for Linux, never reserved, never twice."""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from etrepo.accounts.usernames import (
    RESERVED,
    base_username,
    choose_username,
    gecos,
)
from etrepo.accounts.validation import NAME_MAX, ValidationError, validate_application

LINUX_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
GECOS_BAD = set(":,=\n\r\t")


def nobody_has(_name: str) -> bool:
    return False


def valid_linux_name(name: str) -> bool:
    return LINUX_NAME.fullmatch(name) is not None


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("John", "Doe", "jdoe"),
        ("José", "Núñez", "jnunez"),
        ("Zoë", "Ødegård", "zodegard"),
        ("Aurélien", "Lefèvre", "alefevre"),
        ("Łukasz", "Żółć", "lzolc"),
        ("Mary-Jane", "O'Neil", "moneil"),
        ("Jean Luc", "van der Berg", "jvanderberg"),
        ("Þóra", "Ægisdóttir", "taegisdottir"),
        ("Αλέξανδρος", "Παπαδόπουλος", "apapadopoulos"),
        ("Иван", "Иванов", "iivanov"),
    ],
)
def test_username_is_first_initial_and_last_name_in_ascii(first, last, expected):
    assert choose_username(first, last, nobody_has) == expected


def test_username_of_decomposed_accents_equals_composed():
    decomposed = unicodedata.normalize("NFD", "Aurélien Lefèvre").split()
    assert choose_username(*decomposed, nobody_has) == "alefevre"


def test_collisions_get_the_next_free_number():
    taken = {"jdoe"}
    assert choose_username("John", "Doe", taken.__contains__) == "jdoe2"
    taken.add("jdoe2")
    assert choose_username("Jane", "Doe", taken.__contains__) == "jdoe3"
    taken.discard("jdoe")  # a freed name is given again before higher numbers
    assert choose_username("Jim", "Doe", taken.__contains__) == "jdoe"


@pytest.mark.parametrize(("first", "last", "reserved"),
                         [("R", "Oot", "root"), ("A", "Dmin", "admin"), ("S", "Shd", "sshd"),
                          ("G", "Uest", "guest"), ("P", "Ostgres", "postgres")])
def test_reserved_names_are_skipped(first, last, reserved):
    assert reserved in RESERVED
    name = choose_username(first, last, nobody_has)
    assert name == reserved + "2"


def test_no_reserved_name_is_ever_given():
    for reserved in sorted(RESERVED):
        letters = re.sub(r"[^a-z0-9]", "", reserved)
        name = choose_username(letters[0], letters[1:] or "x", nobody_has)
        assert name not in RESERVED
        assert valid_linux_name(name)
    # hyphenated system names (www-data, no-reply) cannot even be formed: '-' is dropped
    assert base_username("Www", "-Data") == "wdata"
    assert "-" not in base_username("Anne-Marie", "Saint-Exupéry")


def test_names_that_fold_to_nothing_still_give_a_valid_name():
    assert choose_username("ꙮ", "ꙮ", nobody_has) == "user"
    assert valid_linux_name(choose_username("'", "-", nobody_has))


TRICKY_NAMES = [
    ("小明", "王"), ("明", "王小"), ("Σωκράτης", "Παπαδόπουλος"), ("Ёлка", "Щукина"),
    ("محمد", "الأحمد"), ("דוד", "כהן"), ("สมชาย", "ใจดี"), ("민준", "김"), ("Nguyễn", "Văn An"),
    ("İpek", "Işık"), ("Jürgen", "Groß"), ("ﬁona", "ﬂynn"), ("ǅemal", "Ǉubić"), ("ᚠᚢ", "ᚦᚨ"),
    ("𝔄𝔟𝔠", "𝔇𝔢𝔣"), ("A", "B"), ("X", "Æ"), ("José María", "de la Peña y Núñez"),
    ("O'", "'Brien"), ("Jean-", "-Luc"), ("a" * NAME_MAX, "b" * NAME_MAX),
    ("é" * NAME_MAX, "ü" * NAME_MAX), ("王" * NAME_MAX, "李" * NAME_MAX),
    ("Ω" * NAME_MAX, "Ж" * NAME_MAX),
]


def _random_names(count: int) -> list[tuple[str, str]]:
    """Names drawn from the letters of many scripts, kept if the form would accept them."""
    rng = random.Random(20240611)
    ranges = [(0x41, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F),
              (0x5D0, 0x5EA), (0x620, 0x64A), (0x900, 0x97F), (0xE01, 0xE30), (0x10A0, 0x10FF),
              (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0x1E00, 0x1EFF), (0xFB00, 0xFB06)]
    letters = [chr(c) for lo, hi in ranges for c in range(lo, hi + 1)
               if unicodedata.category(chr(c)).startswith("L")]
    names = []
    while len(names) < count:
        parts = ["".join(rng.choice(letters) for _ in range(rng.randint(1, NAME_MAX)))
                 for _ in range(2)]
        try:
            validate_application({"first_name": parts[0], "last_name": parts[1],
                                  "institution": "X", "email": "x@example.org"})
        except ValidationError:
            continue
        names.append((parts[0], parts[1]))
    return names


def _check_name(first: str, last: str) -> None:
    taken: set[str] = set()
    for _ in range(3):  # the first, the second and the third person of that name
        name = choose_username(first, last, taken.__contains__)
        assert valid_linux_name(name), name
        assert name not in RESERVED and name not in taken
        taken.add(name)
    comment = gecos(first, last)
    assert comment.isascii() and comment.isprintable(), comment
    assert not GECOS_BAD & set(comment)
    assert 0 < len(comment) <= 100


@pytest.mark.parametrize(("first", "last"), TRICKY_NAMES)
def test_tricky_names_give_a_linux_name_and_an_ascii_gecos(first, last):
    _check_name(first, last)


def test_random_names_of_many_scripts_give_a_linux_name_and_an_ascii_gecos():
    for first, last in _random_names(300):
        _check_name(first, last)


def test_numbered_names_stay_within_32_characters():
    long_last = "Wolfeschlegelsteinhausenbergerdorff"
    taken = {base_username("Hubert", long_last)}
    taken |= {f"{next(iter(taken))}{n}" for n in range(2, 1000)}
    name = choose_username("Hubert", long_last, taken.__contains__)
    assert name.endswith("1000") and len(name) <= 32 and valid_linux_name(name)


def test_gecos_is_the_full_name_in_ascii():
    assert gecos("Aurélien", "Lefèvre") == "Aurelien Lefevre"
    assert gecos("Zoë", "Ødegård") == "Zoe Odegard"
    assert gecos("Mary-Jane", "O'Neil") == "Mary-Jane O'Neil"


@pytest.mark.parametrize("nasty", ["Ana:Lopez", "Lopez,Ana", "a=b", "Ana\nLopez", "Ana\x00x",
                                   "Ana\x1b[31m", "Ana\u2028Lopez", "Ana\tLopez", "<b>Ana</b>"])
def test_gecos_never_holds_what_breaks_etc_passwd(nasty):
    comment = gecos("Ana", nasty)
    assert comment.isascii() and comment.isprintable()
    assert not GECOS_BAD & set(comment), comment


def test_gecos_of_a_name_without_ascii_letters_is_not_empty():
    assert gecos("ꙮ", "ꙮ") == "ETRepo user"
