"""Settings: defaults, the deployment's Python file, ETREPO_* variables; wrong values named."""

from __future__ import annotations

from pathlib import Path

import pytest

from etrepo.config import Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_defaults():
    settings = load_settings(environ={})
    assert settings.SMTP_PORT == 25 and settings.SMTP_SECURITY == "none"
    assert settings.SMTP_VERIFY is True
    assert settings.PROVISIONER == "dry-run"
    assert settings.CODE_LENGTH == 6 and settings.CODE_MAX_TRIES == 5
    assert settings.SECRET_KEY == ""
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("/instance/etrepo.sqlite3")


def write_config(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.py"
    path.write_text(text)
    return str(path)


def test_config_file_sets_values(tmp_path):
    path = write_config(tmp_path, (
        "import os\n"
        "SITE_NAME = 'ET Sardinia'\n"
        "SMTP_PORT = 587\n"
        "SMTP_SECURITY = 'starttls'\n"
        "USER_GROUPS = 'etusers, jupyter'\n"
        "helper = 'lower-case names are the file\\'s own business'\n"
        "_PRIVATE = 1\n"
    ))
    settings = load_settings(environ={"ETREPO_CONFIG": path})
    assert settings.SITE_NAME == "ET Sardinia"
    assert settings.SMTP_PORT == 587 and settings.SMTP_SECURITY == "starttls"
    assert settings.user_groups == ("etusers", "jupyter")


def test_environment_wins_over_the_file_and_overrides_win_over_both(tmp_path):
    path = write_config(tmp_path, "SMTP_PORT = 587\nSITE_NAME = 'From file'\n")
    environ = {"ETREPO_CONFIG": path, "ETREPO_SMTP_PORT": "2525", "ETREPO_SMTP_VERIFY": "false",
               "ETREPO_TEST_STRICT": "1", "OTHER": "x"}
    settings = load_settings(environ=environ)
    assert settings.SMTP_PORT == 2525  # text from the environment, as a number
    assert settings.SMTP_VERIFY is False
    assert settings.SITE_NAME == "From file"
    assert load_settings(environ=environ, overrides={"SMTP_PORT": 465}).SMTP_PORT == 465


def test_the_example_deployment_config_loads():
    example = REPO / "deploy" / "config.example.py"
    if not example.is_file():
        pytest.skip("no deploy/config.example.py in this tree")
    settings = load_settings(environ={"ETREPO_CONFIG": str(example),
                                      "ETREPO_SMTP_PASSWORD": "pw"})
    assert settings.PROVISIONER == "linux"


def one_line_error(**environ: str) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SMTP_PORT", "smtp", "SMTP_PORT: expected int, got 'smtp'"),
        ("SMTP_PORT", "0", "SMTP_PORT: must be a TCP port, 1 to 65535"),
        ("SMTP_PORT", "70000", "SMTP_PORT: must be a TCP port, 1 to 65535"),
        ("SMTP_SECURITY", "ssl", "SMTP_SECURITY: must be one of none, starttls, tls"),
        ("PROVISIONER", "ldap", "PROVISIONER: must be one of linux, dry-run"),
        ("BASE_URL", "et-repo.example.org", "BASE_URL: must be an http:// or https:// URL"),
        ("BASE_URL", "ftp://et-repo.example.org", "BASE_URL: must be an http:// or https://"),
        ("SMTP_VERIFY", "maybe", "SMTP_VERIFY: expected bool"),
        ("CODE_LENGTH", "3", "CODE_LENGTH: must be between 4 and 12 digits"),
        ("PASSWORD_LENGTH", "8", "PASSWORD_LENGTH: must be between 12 and 128"),
        ("HOME_BASE", "home", "HOME_BASE: must be an absolute path"),
        ("USER_GROUPS", "et users,Bad!", "USER_GROUPS: 'et users' is not a valid group name"),
        ("HELPDESK_EMAIL", "helpdesk", "HELPDESK_EMAIL: must be an email address"),
        ("WORKER_POLL_INTERVAL", "0", "WORKER_POLL_INTERVAL: must be between 0 and 60"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_setting(name, value, says):
    message = one_line_error(**{f"ETREPO_{name}": value})
    assert message.startswith(f"{name}: ")
    assert says in message
    assert value in message  # what was given, to find it


def test_a_wrong_value_in_the_file_is_named_too(tmp_path):
    path = write_config(tmp_path, "SMTP_SECURITY = 'SSL'\n")
    assert one_line_error(ETREPO_CONFIG=path).startswith("SMTP_SECURITY: must be one of")
    path = write_config(tmp_path, "SMTP_PORT = '25a'\n")
    assert one_line_error(ETREPO_CONFIG=path).startswith("SMTP_PORT: expected int")


def test_a_login_over_plain_smtp_is_refused():
    message = one_line_error(ETREPO_SMTP_USER="portal", ETREPO_SMTP_PASSWORD="hunter2-pw")
    assert message.startswith("SMTP_SECURITY: a login over an unencrypted connection")
    assert "hunter2-pw" not in message


def test_unknown_names_in_the_file_are_refused(tmp_path):
    path = write_config(tmp_path, "SMTP_PORTT = 587\n")
    assert one_line_error(ETREPO_CONFIG=path) == f"SMTP_PORTT: unknown setting in {path}"


def test_a_missing_or_broken_file_is_one_line(tmp_path):
    missing = str(tmp_path / "nope.py")
    assert one_line_error(ETREPO_CONFIG=missing) == f"CONFIG: no such file {missing!r}"
    broken = write_config(tmp_path, "SMTP_PORT = = 1\n")
    assert one_line_error(ETREPO_CONFIG=broken).startswith(f"CONFIG: cannot load {broken}: ")


def test_unknown_override_is_refused():
    with pytest.raises(SettingsError, match=r"^NOPE: unknown setting$"):
        load_settings(environ={}, overrides={"NOPE": 1})


def test_describe_masks_secrets():
    settings = load_settings(environ={}, overrides={
        "SECRET_KEY": "k" * 40, "SMTP_PASSWORD": "hunter2-pw", "SMTP_USER": "portal",
        "SMTP_SECURITY": "starttls"})
    shown = {name: value for name, value, _help in settings.describe()}
    assert shown["SECRET_KEY"] == "(set)" and shown["SMTP_PASSWORD"] == "(set)"
    assert shown["SMTP_USER"] == "'portal'"
    assert "hunter2-pw" not in str(shown) and "k" * 40 not in str(shown)
    assert load_settings(environ={}).describe()[0][2]  # every setting says what it does
    empty = {name: value for name, value, _ in load_settings(environ={}).describe()}
    assert empty["SECRET_KEY"] == "(empty)"


def test_replace_validates():
    settings = load_settings(environ={})
    assert settings.replace(SMTP_PORT=587).SMTP_PORT == 587
    with pytest.raises(SettingsError, match=r"^SMTP_PORT:"):
        settings.replace(SMTP_PORT=0)
    with pytest.raises(AttributeError):
        settings.SMTP_PORT = 1  # type: ignore[misc]
    assert isinstance(settings, Settings)


@pytest.mark.parametrize(("environ", "starts"), [
    ({"ETREPO_SMTP_PROT": "25"}, "SMTP_PROT: unknown setting (environment variable"),
    ({"ETREPO_SMTP_TIMEOUT": "nan"}, "SMTP_TIMEOUT: expected float"),
    ({"ETREPO_SECRET_KEY": "short"}, "SECRET_KEY: too short"),
    ({"ETREPO_DATABASE_URL": "foo://bar"}, "DATABASE_URL: must be a sqlite"),
    ({"ETREPO_CODE_TTL": "0"}, "CODE_TTL: must be a positive number of seconds"),
])
def test_more_wrong_values_stop_with_one_line_naming_the_setting(environ, starts):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ)
    assert str(info.value).startswith(starts)
    assert "\n" not in str(info.value)


def test_the_test_suites_own_switches_are_not_settings():
    load_settings(environ={"ETREPO_TEST_STRICT": "1"})


def test_a_config_file_that_is_a_folder_or_exits_is_one_clear_line(tmp_path):
    with pytest.raises(SettingsError, match="is not a file"):
        load_settings(environ={"ETREPO_CONFIG": str(tmp_path)})
    exits = tmp_path / "config.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    with pytest.raises(SettingsError, match=r"cannot load .*SystemExit: 3"):
        load_settings(environ={"ETREPO_CONFIG": str(exits)})


def test_secrets_never_appear_in_errors_or_in_the_settings_repr():
    secret, password = "hunter2-short", "S3cretPw"
    for environ in ({"ETREPO_SECRET_KEY": secret},
                    {"ETREPO_DATABASE_URL": f"mysql://u:{password}@h/db"}):
        with pytest.raises(SettingsError) as info:
            load_settings(environ=environ)
        assert secret not in str(info.value) and password not in str(info.value)
    settings = load_settings(environ={"ETREPO_SECRET_KEY": "k" * 40,
                                      "ETREPO_SMTP_PASSWORD": password})
    assert "k" * 40 not in repr(settings) and password not in repr(settings)
    url = load_settings(environ={"ETREPO_DATABASE_URL": f"postgresql+psycopg://u:{password}@h/d"})
    assert password not in str(url.describe())
