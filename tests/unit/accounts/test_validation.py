"""What the applicant types: cleaned, or refused with a message per field a person can act on."""

from __future__ import annotations

import unicodedata

import pytest

from etrepo.accounts.validation import (
    EMAIL_MAX,
    INSTITUTION_MAX,
    NAME_MAX,
    ValidationError,
    normalize_email,
    validate_application,
)
from etrepo.mail.interfaces import OutgoingMail
from etrepo.mail.transport import build_message

GOOD = {
    "first_name": "Aurélien",
    "last_name": "Lefèvre",
    "institution": "INFN Pisa",
    "email": "A.Lefevre@Example.ORG",
    "github": "alefevre",
}


def refused(**changes: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        validate_application({**GOOD, **changes})
    assert info.value.http_status == 422
    return info.value.fields


def test_a_good_application_is_kept_as_typed():
    app = validate_application(GOOD)
    assert (app.first_name, app.last_name) == ("Aurélien", "Lefèvre")
    assert app.email == "A.Lefevre@Example.ORG"  # as typed: the mail goes there
    assert app.institution == "INFN Pisa"
    assert app.github == "alefevre"


def test_names_are_tidied_but_not_changed():
    app = validate_application({**GOOD, "first_name": "  Jean   Luc ",
                                "last_name": unicodedata.normalize("NFD", "Lefèvre")})
    assert app.first_name == "Jean Luc"
    assert app.last_name == "Lefèvre"  # one form of 'è', whatever the keyboard sent


@pytest.mark.parametrize("name", ["O'Neil", "O’Neil", "Saint-Exupéry", "St. John", "Ødegård",
                                  "王", "Παπαδόπουλος", "Nguyễn Văn"])
def test_real_names_are_accepted(name):
    assert validate_application({**GOOD, "last_name": name}).last_name == name


@pytest.mark.parametrize("github", ["@alefevre", "https://github.com/alefevre/", " alefevre "])
def test_github_account_is_taken_from_what_people_paste(github):
    assert validate_application({**GOOD, "github": github}).github == "alefevre"


def test_github_is_optional():
    assert validate_application({**GOOD, "github": ""}).github is None
    assert validate_application({k: v for k, v in GOOD.items() if k != "github"}).github is None


def test_every_problem_is_reported_at_once_per_field():
    with pytest.raises(ValidationError) as info:
        validate_application({"github": "-bad-"})
    fields = info.value.fields
    assert fields == {
        "first_name": "Please enter your first name.",
        "last_name": "Please enter your last name.",
        "institution": "Please enter your institution.",
        "email": "Please enter your email address.",
        "github": "A GitHub account name has at most 39 letters, digits or single hyphens.",
    }
    for name in fields:
        assert name in info.value.message


@pytest.mark.parametrize("char", [":", ",", "=", "\n", "\r", "\t", "\x00", "\x1b", "\x7f",
                                  "\u2028", "\u0085", ";", "/", "\\", "<", ">", "&", '"', "|",
                                  "$", "`", "1", "\U0001f600"])
def test_separators_and_control_characters_in_a_name_are_refused(char):
    fields = refused(last_name=f"Ana{char}Lopez")
    assert set(fields) == {"last_name"}
    assert "letters, spaces, hyphens, apostrophes and periods" in fields["last_name"]


def test_markup_in_a_name_is_refused():
    fields = refused(first_name="<img src=x onerror=alert(1)>")
    assert set(fields) == {"first_name"}


@pytest.mark.parametrize(("field", "limit"), [("first_name", NAME_MAX), ("last_name", NAME_MAX),
                                              ("institution", INSTITUTION_MAX)])
def test_too_long_names_the_limit(field, limit):
    assert validate_application({**GOOD, field: "a" * limit})
    fields = refused(**{field: "a" * (limit + 1)})
    assert f"at most {limit} characters" in fields[field]


def test_a_300_character_last_name_is_refused_with_the_limit():
    assert refused(last_name="x" * 300) == {
        "last_name": "Your last name is too long: at most 64 characters."
    }


def test_too_long_email_names_the_limit():
    long_address = "a" * (EMAIL_MAX - len("@example.org") + 1) + "@example.org"
    assert f"at most {EMAIL_MAX} characters" in refused(email=long_address)["email"]


def test_a_name_needs_a_letter():
    assert "at least one letter" in refused(first_name="'-.")["first_name"]


def test_institution_must_be_one_line():
    assert refused(institution="INFN\nPisa") == {
        "institution": "Please use a single line of plain text."
    }


def test_non_text_values_are_refused_not_crashed_on():
    fields = refused(first_name=12, last_name=["x"], email={"a": 1}, institution=True)
    assert fields == {name: "Must be text." for name in
                      ("first_name", "last_name", "email", "institution")}


@pytest.mark.parametrize("email", [
    "jane", "jane@", "@uni.edu", "jane@uni", "jane@@uni.edu", "jane doe@uni.edu",
    "jane@uni.edu\nBcc: x@y.org", "jane\x00@uni.edu", "jane@uni..edu",
    "jané@uni.edu",
    # accepted by a loose pattern, but no mail could ever be built for them:
    "a,b@example.org", "a<b>@example.org", "a;b@example.org", 'a"b@example.org',
    "a[b]@example.org", "a\\b@example.org", ".a@example.org", "a..b@example.org",
])
def test_bad_addresses_are_refused(email):
    assert "email" in refused(email=email)


@pytest.mark.parametrize("email", ["jane.doe@uni.edu", "Jane.Doe+et@Uni.EDU",
                                   "o'neil@example.org", "jane@bücher.de"])
def test_accepted_addresses_can_be_mailed(email):
    app = validate_application({**GOOD, "email": email})
    build_message(OutgoingMail(to_addr=app.email, to_name="A B", subject="s", body="b"),
                  "ETRepo <no-reply@localhost>")


def test_email_normal_form_ignores_case_and_surrounding_space():
    forms = {normalize_email(e) for e in ("Jane.Doe@Uni.EDU", "jane.doe@uni.edu",
                                         " JANE.DOE@UNI.EDU ")}
    assert forms == {"jane.doe@uni.edu"}


def test_email_normal_form_folds_full_width_domain_letters():
    # An IME left on full-width: the same mailbox, so the same key.
    typed = "jane.doe@uni.ＥＤＵ"
    assert validate_application({**GOOD, "email": typed})
    assert normalize_email(typed) == "jane.doe@uni.edu"


def test_one_field_is_checked_alone_with_the_same_rules_as_the_whole_form():
    from etrepo.accounts.validation import check_field

    assert check_field("last_name", "  Núñez  ") == ("Núñez", None)
    assert "letters" in check_field("last_name", "Ana:Lopez")[1]
    assert check_field("email", "not-an-address")[1].startswith("This is not a valid email")
    assert check_field("github", "")[1] is None  # optional
    assert check_field("first_name", 42)[1] == "Must be text."


@pytest.mark.parametrize("email", ["a@127.0.0.1", "a@[127.0.0.1]", "a@ex_ample.org",
                                   "a@-example.org", "a@example.123", "x" * 65 + "@example.org"])
def test_addresses_no_mail_could_reach_are_refused(email):
    from etrepo.accounts.validation import check_field

    assert check_field("email", email)[1] is not None


def test_both_spellings_of_an_international_domain_are_one_address():
    from etrepo.accounts.validation import check_field, normalize_email

    unicode_form, _ = check_field("email", "zoe@exämple.org")
    ascii_form, _ = check_field("email", "Zoe@XN--EXMPLE-CUA.org")
    assert unicode_form == "zoe@xn--exmple-cua.org"  # stored and mailed in ASCII
    assert normalize_email(unicode_form) == normalize_email(ascii_form)
