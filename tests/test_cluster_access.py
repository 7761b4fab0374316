"""curate/cluster.py without Ray: addresses, where the token comes from (Ray's order), the messages."""

from __future__ import annotations

import pytest

from curate import cluster
from curate.errors import ClusterError


@pytest.fixture
def no_token(monkeypatch, tmp_path):
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_gcs_host_port():
    assert cluster.gcs_host_port("10.0.0.1:6379") == ("10.0.0.1", 6379)
    assert cluster.gcs_host_port("[::1]:6380") == ("::1", 6380)
    assert cluster.gcs_host_port("auto") is None and cluster.gcs_host_port("ray://h:10001") is None
    with pytest.raises(ClusterError) as err:
        cluster.gcs_host_port("10.0.0.1")
    assert err.value.exit_code == 2 and "HOST:PORT" in str(err.value)


def test_token_source_follows_rays_order(no_token, monkeypatch):
    assert cluster.token_source() is None and not cluster.may_enable_token_mode()
    (no_token / "home/.ray").mkdir(parents=True)
    (no_token / "home/.ray/auth_token").write_text("t0\n")
    assert cluster.token_source() == "~/.ray/auth_token"
    (no_token / "tok").write_text("t1")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(no_token / "tok"))
    assert cluster.token_source() == f"RAY_AUTH_TOKEN_PATH ({no_token / 'tok'})"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t2")
    assert cluster.token_source() == "RAY_AUTH_TOKEN" and cluster.may_enable_token_mode()


def test_an_explicit_mode_is_never_overridden(no_token, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert not cluster.may_enable_token_mode()
    assert "RAY_AUTH_MODE=disabled in this environment" in str(cluster.missing_token_error("h:1"))


@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_a_token_path_without_a_token_is_an_error(no_token, monkeypatch, content):
    path = no_token / "tok"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path))
    with pytest.raises(ClusterError, match="not a readable, non-empty token file") as err:
        cluster.token_source()
    assert err.value.exit_code == 1


def test_messages_name_the_variables_never_the_token(no_token, monkeypatch):
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-value")
    message = str(cluster.refused_token_error("h:1"))
    assert "s3cr3t-value" not in message and "refused the authentication token from RAY_AUTH_TOKEN" in message
    assert all(v in message for v in ("RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token"))


def test_nothing_listening_is_a_usage_error():
    from tests.raynodes import free_ports

    with pytest.raises(ClusterError, match="no Ray cluster at") as err:
        cluster.check_reachable(f"127.0.0.1:{free_ports(1)[0]}")
    assert err.value.exit_code == 2
