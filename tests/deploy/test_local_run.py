"""`make run` (deploy/local/run.py) starts the sandbox partner systems with everything else, gives
every child the same sandbox ports and public port, and lists the sandbox in its banner."""

from __future__ import annotations

import json

from deploy.local import run


def test_the_sandbox_is_started_as_a_child_on_the_demo_ports():
    children = run.child_commands(8613, 9100)
    assert list(children) == ["sandbox", "web", "worker", "beat", "mqtt"]
    assert children["sandbox"][1:] == ["-m", "connectors.sandbox", "all", "--port", "9100"]
    assert children["web"][-2:] == ["0.0.0.0:8613", "--noreload"]


def test_children_agree_on_the_sandbox_ports_and_the_served_port_unless_the_user_chose_one():
    assert run.demo_environment(8613, 9100, {}) == {"BATON_SANDBOX_PORT": "9100", "BATON_PUBLIC_PORT": "8613"}
    assert run.demo_environment(8613, 9100, {"BATON_PUBLIC_PORT": ""})["BATON_PUBLIC_PORT"] == ""  # behind a proxy on 80


def test_the_banner_lists_the_sandbox_systems_and_how_to_switch_a_fault_on(tmp_path, monkeypatch):
    tenants = [{"name": "Acme Freight", "url": "http://acme.localhost:8000/", "logins": []}]
    (tmp_path / "demo.json").write_text(json.dumps({"console": {"logins": []}, "tenants": tenants}))
    monkeypatch.setenv("BATON_VAR_DIR", str(tmp_path))

    shown = run.banner(8613, 2.5, 9100)

    assert "  Acme Freight  http://acme.localhost:8613/" in shown
    for title, port in (("ERP", 9100), ("TMS", 9101), ("WMS", 9102), ("Carrier", 9103)):
        assert f"      {title + ' sandbox':<16} http://127.0.0.1:{port}" in shown
    assert "/connections/inbox/" in shown
    assert """curl -d '{"fail_next": 3}' <url>/_sandbox/faults""" in shown
    assert "Sandbox" not in run.banner(8613, 2.5)  # --no-seed: nothing to say about it
