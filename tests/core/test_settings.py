"""Settings as users write them: list settings as a JSON list or comma-separated text, and a value that cannot be
read stops start-up with a message naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from georeg.core.config import NBS_CSW_ENDPOINT, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    for name in ("GEOREG_CSW_ENDPOINTS", "GEOREG_DOWNLOAD_HOSTS", "GEOREG_MOUNT_ROOTS", "GEOREG_CSW_HARVEST_KEYWORDS",
                 "GEOREG_CSW_TIMEOUT_SECONDS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("raw", ['["http://a.example/csw", "http://b.example/csw"]',
                                 "http://a.example/csw,http://b.example/csw",
                                 " http://a.example/csw ; http://b.example/csw "])
def test_list_settings_take_json_or_comma_separated_values(monkeypatch, raw):
    monkeypatch.setenv("GEOREG_CSW_ENDPOINTS", raw)
    assert load_settings().csw_endpoints == ["http://a.example/csw", "http://b.example/csw"]


def test_json_lists_of_paths_and_the_defaults(monkeypatch, tmp_path):
    assert load_settings().csw_endpoints == [NBS_CSW_ENDPOINT]
    monkeypatch.setenv("GEOREG_MOUNT_ROOTS", f'["{tmp_path}/a", "{tmp_path}/with,comma"]')
    monkeypatch.setenv("GEOREG_CSW_HARVEST_KEYWORDS", '["Sentinel-1", "Svalbard"]')
    settings = load_settings()
    assert settings.mount_roots == [tmp_path / "a", tmp_path / "with,comma"]
    assert settings.csw_harvest_keywords == ["Sentinel-1", "Svalbard"]
    monkeypatch.setenv("GEOREG_DOWNLOAD_HOSTS", "[]")
    assert load_settings().download_hosts == []


@pytest.mark.parametrize(("name", "raw", "says"), [
    ("GEOREG_CSW_ENDPOINTS", '["http://a.example/csw"', "not a valid JSON list"),
    ("GEOREG_DOWNLOAD_HOSTS", '[1, 2]', "JSON list of strings"),
    ("GEOREG_CSW_TIMEOUT_SECONDS", "soon", "GEOREG_CSW_TIMEOUT_SECONDS"),
])
def test_unreadable_values_name_the_setting(monkeypatch, name, raw, says):
    monkeypatch.setenv(name, raw)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert name in str(raised.value) and says in str(raised.value)


def test_the_cli_stops_with_the_message_and_exit_code_2(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GEOREG_DATA_DIR": str(tmp_path / "data"),
           "GEOREG_CSW_ENDPOINTS": '["http://a.example/csw"'}
    run = subprocess.run([sys.executable, "-m", "georeg.deployments.cli", "serve"], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stderr
    assert "GEOREG_CSW_ENDPOINTS" in run.stderr and "Traceback" not in run.stderr
