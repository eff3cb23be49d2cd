"""`blockfill serve` arguments: TCP stays on loopback unless asked, bad settings stop it before it starts."""

import pytest

from lsp_server.cli import main


def test_tcp_on_a_non_loopback_address_needs_allow_remote(capsys):
    assert main(["--tcp", "192.0.2.1:2087"]) == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_unknown_settings_stop_the_server_before_it_starts(capsys):
    assert main(["--set", "no_such_setting=1"]) == 2
    assert "unknown setting" in capsys.readouterr().err


def test_a_malformed_tcp_address_is_a_usage_error():
    with pytest.raises(SystemExit):
        main(["--tcp", "localhost"])
