"""The model registry's rules on the in-memory fake. The same bodies (``check_*``) run against
the MongoDB/GridFS adapter in tests/integration/test_trainer_registry.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cryptocast_common.registry import (
    InMemoryModelRegistry,
    IntegrityError,
    ModelRegistry,
    RegistryError,
    VersionConflict,
    VersionNotFound,
    sha256_hex,
)
from cryptocast_inference.artifacts import BUNDLED_ARTIFACTS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
FILES = {"model.json": b'{"params": 1}', "notes.md": b"# notes\n"}


async def register_at(
    registry: ModelRegistry, ref: str, day: int, body: bytes = b"x", status: str = "registered"
) -> None:
    name, _, version = ref.partition("@")
    metadata = {"created_at": T0 + timedelta(days=day), "status": status}
    await registry.register(name, version, {"model.json": body}, metadata)


async def check_register_and_get(registry: ModelRegistry) -> None:
    registered = await registry.register(
        "dist-4h",
        "v1",
        FILES,
        {
            "created_at": T0,
            "data": {"first": "2024-01-01T00:00:00+00:00", "last": "2025-01-01T00:00:00+00:00"},
            "metrics": {"mae_ratio": 0.999},
            "status": "challenger",
            "kind": "distribution",
        },
    )
    assert registered.ref == "dist-4h@v1"
    assert registered.files == {name: sha256_hex(body) for name, body in FILES.items()}
    version, files = await registry.get("dist-4h@v1")
    assert files == FILES
    assert version == registered
    assert version.created_at == T0 and version.status == "challenger"
    assert version.metrics == {"mae_ratio": 0.999} and version.info == {"kind": "distribution"}
    assert version.data["last"] == "2025-01-01T00:00:00+00:00"
    assert [v.ref for v in await registry.versions()] == ["dist-4h@v1"]
    assert await registry.versions("other") == []
    with pytest.raises(VersionNotFound, match="other@v1"):
        await registry.get("other@v1")
    with pytest.raises(RegistryError, match="name@version"):
        await registry.get("no-version")


async def check_register_is_idempotent(registry: ModelRegistry) -> None:
    first = await registry.register("m", "1", FILES, {"created_at": T0})
    again = await registry.register("m", "1", FILES, {"created_at": T0 + timedelta(days=1)})
    assert again == first  # the same files: the existing version, unchanged
    with pytest.raises(VersionConflict, match="m@1"):
        await registry.register("m", "1", {"model.json": b"other"}, {})
    assert [v.ref for v in await registry.versions()] == ["m@1"]
    assert (await registry.get("m@1"))[1] == FILES


async def check_retention_keeps_last_and_protected(registry: ModelRegistry) -> None:
    for day in range(5):
        await register_at(registry, f"dist@v{day}", day, body=f"d{day}".encode())
    await register_at(registry, "lstm@a", 0)
    await register_at(registry, "lstm@b", 1)
    removed = await registry.retain(keep_last=2, protected={"dist@v0", "dist@v2"})
    assert sorted(removed) == ["dist@v1"]
    assert [v.ref for v in await registry.versions("dist")] == [
        "dist@v0",
        "dist@v2",
        "dist@v3",
        "dist@v4",
    ]
    assert [v.ref for v in await registry.versions("lstm")] == ["lstm@a", "lstm@b"]
    with pytest.raises(VersionNotFound):
        await registry.get("dist@v1")
    assert (await registry.get("dist@v0"))[1] == {"model.json": b"d0"}
    assert sorted(await registry.retain(keep_last=0, protected={"dist@v4"})) == [
        "dist@v0",
        "dist@v2",
        "dist@v3",
        "lstm@a",
        "lstm@b",
    ]
    assert [v.ref for v in await registry.versions()] == ["dist@v4"]


async def check_seed_from_bundled_folder(registry: ModelRegistry) -> None:
    seeded = await registry.seed_from_folder(BUNDLED_ARTIFACTS)
    refs = {v.ref for v in seeded}
    assert {"dist-4h@20261202-4dcd0876", "lstm-4h@20261125-f64027e9"} <= refs
    dist, files = await registry.get("dist-4h@20261202-4dcd0876")
    assert set(files) == {"model.json"} and dist.status == "bundled"
    assert dist.info["kind"] == "distribution" and dist.info["window"] == 120
    assert dist.metrics["pooled"]["model"]["n"] > 0  # the final-test metrics
    assert dist.data["training_range"]["last_target_before"].startswith("2024-10-24")
    lstm, lstm_files = await registry.get("lstm-4h@20261125-f64027e9")
    folder = BUNDLED_ARTIFACTS / "lstm-4h/20261125-f64027e9"
    assert lstm_files == {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert lstm.info["kind"] == "lstm" and json.loads(lstm_files["metadata.json"])["window"]
    again = await registry.seed_from_folder(BUNDLED_ARTIFACTS)  # second start: no change
    assert {v.ref for v in again} == refs and len(await registry.versions()) == len(refs)


CHECKS = [
    check_register_and_get,
    check_register_is_idempotent,
    check_retention_keeps_last_and_protected,
    check_seed_from_bundled_folder,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_fake_registry(check) -> None:  # type: ignore[no-untyped-def]
    await check(InMemoryModelRegistry())


async def test_fake_keeps_the_bundled_versions_and_the_ever_champions() -> None:
    registry = InMemoryModelRegistry()
    for day in range(4):
        await register_at(registry, f"dist@v{day}", day)
    await register_at(registry, "dist@seed", -1, status="bundled")
    registry.champions = {"dist@v0"}
    assert sorted(await registry.retain(keep_last=1, protected={"dist@v2"})) == ["dist@v1"]


async def test_fake_refuses_a_file_whose_hash_changed() -> None:
    registry = InMemoryModelRegistry()
    await registry.register("m", "1", FILES, {})
    registry.corrupt("m@1", "notes.md", b"tampered")
    with pytest.raises(IntegrityError, match=r"m@1: file notes\.md has sha256"):
        await registry.get("m@1")


@pytest.mark.parametrize("bad", [{}, {"a/b": b"1"}, {".hidden": b"1"}])
async def test_register_refuses_bad_file_sets(bad: dict[str, bytes]) -> None:
    with pytest.raises(RegistryError):
        await InMemoryModelRegistry().register("m", "1", bad, {})


async def test_seed_from_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="no artifact folder"):
        await InMemoryModelRegistry().seed_from_folder(tmp_path / "missing")
