"""The TypeScript client (clients/typescript) with Node's test runner against a real
gateway HTTP server: installs its dependencies (npm ci, from the cache when offline), checks
that src/schema.d.ts is what openapi-typescript makes of clients/openapi.json, type-checks
the client against it and runs its tests with the gateway's URL in CRYPTOCAST_BASE_URL."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from tests.clients.conftest import KEY, LiveGateway

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


async def run(*command: str, env: dict[str, str] | None = None, within: float = 60) -> str:
    """``command``'s output; it fails the test after ``within`` seconds (the three runs
    together stay inside the test's limit)."""
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=CLIENT,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"{' '.join(command)} took more than {within} s")
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"{' '.join(command)} failed ({process.returncode}):\n{text}"
    return text


@pytest.fixture(scope="module")
def npm() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "node and npm are needed for the TypeScript client's tests (Node 20 or later): "
            "install Node.js, e.g. apt-get install nodejs npm"
        )
    return npm


async def test_typescript_client_against_a_live_gateway(live: LiveGateway, npm: str) -> None:
    await run(npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", within=120)
    generated = CLIENT / "src" / "schema.d.ts"
    committed = generated.read_text()
    await run(npm, "run", "--silent", "generate")
    regenerated = generated.read_text()
    if regenerated != committed:
        generated.write_text(committed)
        pytest.fail(
            "clients/typescript/src/schema.d.ts is not what `npm run generate` makes of "
            "clients/openapi.json: regenerate it and commit it"
        )
    output = await run(
        npm,
        "test",
        env={"CRYPTOCAST_BASE_URL": live.base_url, "CRYPTOCAST_API_KEY": KEY},
    )
    assert "# fail 0" in output and "# pass 6" in output, output
