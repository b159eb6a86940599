"""The one model-source parser: default names, the pinned flag, the run scripts' ORG/REPO shorthand."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelpipe.errors import InvalidSourceError
from modelpipe.sources import HubSource, LocalSource, expand_source, parse_source


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("hf://segmind/tiny-sd", "tiny-sd"),
        ("hf://segmind/tiny-sd@cad0bd7", "tiny-sd"),
        ("hf://segmind/tiny-sd/", "tiny-sd"),
        ("file:///models/My%20Model", "My Model"),
    ],
)
def test_default_name_is_the_repository_or_folder(uri: str, name: str) -> None:
    assert parse_source(uri).name == name


def test_revision_in_the_uri_is_pinned_the_default_is_not() -> None:
    pinned = parse_source("hf://org/repo@v2")
    default = parse_source("hf://org/repo")
    assert isinstance(pinned, HubSource) and pinned.pinned and pinned.revision == "v2"
    assert isinstance(default, HubSource) and not default.pinned and default.revision == "main"


def test_file_source_is_a_local_path() -> None:
    assert parse_source("file:///models/tiny") == LocalSource(path=Path("/models/tiny"))


@pytest.mark.parametrize(
    ("text", "uri"),
    [
        ("stabilityai/sd-turbo", "hf://stabilityai/sd-turbo"),
        ("hf://org/repo@v1", "hf://org/repo@v1"),
        ("file:///models/tiny", "file:///models/tiny"),
    ],
)
def test_expand_source_accepts_the_shorthand(text: str, uri: str) -> None:
    assert expand_source(text) == uri


@pytest.mark.parametrize("text", ["sd-turbo", "org/repo/extra", "-org/repo", ""])
def test_expand_source_rejects_what_is_not_org_repo(text: str) -> None:
    with pytest.raises(InvalidSourceError, match="is not ORG/REPO"):
        expand_source(text)


def test_a_repo_without_an_organisation_is_refused() -> None:
    with pytest.raises(InvalidSourceError, match="not a valid ORG/REPO repo id"):
        parse_source("hf://gpt2")


def test_parse_source_command_prints_uri_name_and_revision(capsys: pytest.CaptureFixture[str]) -> None:
    from modelpipe.cli import main

    assert main(["parse-source", "--source", "segmind/Tiny_SD"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "SOURCE_URI: hf://segmind/Tiny_SD",
        "MODEL_NAME: tiny-sd",
        "REVISION: ",
    ]
    assert main(["parse-source", "--source", "hf://org/repo@v2"]) == 0
    assert "REVISION: v2" in capsys.readouterr().out


def test_parse_source_command_names_a_bad_source(capsys: pytest.CaptureFixture[str]) -> None:
    from modelpipe.cli import main

    assert main(["parse-source", "--source", "sd-turbo"]) == 1
    assert "model source 'sd-turbo' is not ORG/REPO" in capsys.readouterr().err
