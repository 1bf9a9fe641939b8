"""The README is what a newcomer trusts: it must list every setting and the two commands."""

import dataclasses
import re
from pathlib import Path

from etrepo.config import Settings

README = Path(__file__).resolve().parents[3] / "README.md"


def test_readme_lists_every_setting_with_its_default():
    text = README.read_text()
    rows = {name: (default, meaning) for name, default, meaning in re.findall(
        r"^\| `([A-Z_]+)` \| (.*?) \| (.*) \|$", text, re.MULTILINE)}
    for f in dataclasses.fields(Settings):
        assert f.name in rows, f"README's settings table lacks {f.name}"
        shown, meaning = rows[f.name]
        assert meaning == f.metadata["help"], f"README's meaning of {f.name} is not the code's"
        assert "|" not in meaning, f"a '|' in the help of {f.name} breaks the table"
        if f.default == "":
            assert shown == "(empty)", f.name
        else:
            assert shown == f"`{f.default!r}`", f"README shows {shown} as default of {f.name}"


def test_readme_gives_the_two_setup_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text
