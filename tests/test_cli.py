"""The tally command, run as a user runs it: JSON out, one clear line and non-zero on failure."""

from __future__ import annotations

import json

import falcon.testing
import pytest

from tests.conftest import bearer, tally

pytestmark = pytest.mark.slow


def test_org_create_prints_the_organization_and_its_key_once(database_url: str, client: falcon.testing.TestClient) -> None:
    """The printed key works against the API; a second create of the same name fails in one line."""
    env = {"DATABASE_URL": database_url}

    created = tally("org", "create", "Initech", env=env)
    again = tally("org", "create", "Initech", env=env)
    missing_ok = tally("org", "create", "Initech", "--if-missing", env=env)

    assert created.returncode == 0, created.stderr
    printed = json.loads(created.stdout)
    assert set(printed) >= {"organization_id", "api_key"}
    response = client.simulate_get("/api/v1/organizations", headers=bearer(printed["api_key"]))
    assert response.json["organization"]["lago_id"] == printed["organization_id"]
    assert again.returncode == 1
    assert again.stderr == "tally: an organization with slug 'initech' exists\n"
    assert json.loads(missing_ok.stdout) == {"organization_id": printed["organization_id"], "api_key": None, "existing": True}


def test_keys_can_be_issued_listed_and_revoked(database_url: str, client: falcon.testing.TestClient) -> None:
    """A revoked key is refused by the API at once; the other keys keep working."""
    env = {"DATABASE_URL": database_url}
    first = json.loads(tally("org", "create", "Hooli", env=env).stdout)
    second = json.loads(tally("org", "keys", "create", "hooli", "--name", "ci", env=env).stdout)

    revoked = tally("org", "keys", "revoke", first["api_key_id"], env=env)
    listed = [json.loads(line) for line in tally("org", "keys", "list", "hooli", env=env).stdout.splitlines()]

    assert revoked.returncode == 0
    assert [(k["name"], k["revoked"]) for k in listed] == [("default", True), ("ci", False)]
    assert all("api_key" not in k for k in listed)
    assert client.simulate_get("/api/v1/organizations", headers=bearer(first["api_key"])).status_code == 401
    assert client.simulate_get("/api/v1/organizations", headers=bearer(second["api_key"])).status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("org", "keys", "revoke", "nope"), "tally: not a key id: 'nope'\n"),
        (("org", "keys", "create", "no-such-org"), "tally: no organization with slug 'no-such-org'\n"),
        (("org", "create", "株式会社"), "tally: cannot derive a slug from '株式会社'; pass --slug\n"),
        (("projections", "rebuild", "nope"), "tally: unknown projection(s): nope; known: "),
    ],
)
def test_failures_print_one_clear_line(database_url: str, args: tuple[str, ...], message: str) -> None:
    """Refusals are a single line on stderr and exit status 1, never a traceback."""
    result = tally(*args, env={"DATABASE_URL": database_url})

    assert result.returncode == 1
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1


def test_an_unreachable_database_is_one_line(tmp_path: object) -> None:
    """A wrong DATABASE_URL is reported as such."""
    result = tally("migrate", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"})

    assert result.returncode == 1
    assert result.stderr.startswith("tally: cannot reach the database:")
    assert len(result.stderr.splitlines()) == 1


def test_migrate_and_rebuild_report_and_succeed(database_url: str) -> None:
    """migrate is idempotent; rebuild replays the log with a progress bar."""
    env = {"DATABASE_URL": database_url}
    tally("org", "create", "Vandelay", env=env)

    migrated = tally("migrate", env=env)
    rebuilt = tally("projections", "rebuild", env=env)
    status = tally("projections", "status", env=env)

    assert migrated.stdout == "migrated\n"
    assert rebuilt.returncode == 0 and "100%" in rebuilt.stderr
    assert "organizations: 0 events behind\n" in status.stdout
    assert all(line.endswith(": 0 events behind") for line in status.stdout.splitlines())


def test_the_scheduler_runs_one_pass_and_exits(database_url: str) -> None:
    """--once runs every job once and exits 0 when all succeeded."""
    result = tally("scheduler", "--once", env={"DATABASE_URL": database_url})

    assert result.returncode == 0, result.stderr
