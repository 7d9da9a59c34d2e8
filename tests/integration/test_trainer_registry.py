"""The MongoDB/GridFS model registry on nx-27017: the fake's contract, plus what only a real
store can get wrong (an interrupted register, bytes changed in GridFS, orphan cleanup)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_common.events import ChangeKind, ModelChange, ModelRef
from cryptocast_common.registry import IntegrityError, MongoModelRegistry, VersionNotFound
from cryptocast_gateway.store import MongoEventStore
from tests.unit.test_registry import CHECKS, FILES, T0, register_at


@pytest.fixture
async def db(mongo_url: str) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url, tz_aware=True)
    name = f"registry_{uuid.uuid4().hex[:12]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


@pytest.fixture
async def registry(db: AsyncDatabase[dict[str, Any]]) -> MongoModelRegistry:
    registry = MongoModelRegistry(db, orphan_grace=timedelta(0))
    await registry.ensure_indexes()
    return registry


async def stored_files(registry: MongoModelRegistry) -> list[str]:
    """Names of every file in the bucket, through the GridFS API (nx-27017 answers GridFS
    operations on ``models.files``, not arbitrary queries such as count_documents)."""
    return [f.filename async for f in registry._bucket.find({})]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_mongo_registry(check, registry: MongoModelRegistry) -> None:  # type: ignore[no-untyped-def]
    await check(registry)


async def test_metadata_document_and_gridfs_files(
    registry: MongoModelRegistry, db: AsyncDatabase[dict[str, Any]]
) -> None:
    await registry.register("m", "1", FILES, {"metrics": {"x": 1}})
    document = await db["model_versions"].find_one({"_id": "m@1"})
    assert document is not None
    assert {f["name"] for f in document["files"]} == set(FILES)
    assert document["metrics"] == {"x": 1} and document["status"] == "registered"
    assert sorted(await stored_files(registry)) == ["m@1/model.json", "m@1/notes.md"]


async def test_interrupted_register_leaves_nothing_visible(
    registry: MongoModelRegistry, db: AsyncDatabase[dict[str, Any]]
) -> None:
    started = asyncio.Event()
    upload = registry._bucket.upload_from_stream_with_id

    async def slow_upload(*args: Any, **kwargs: Any) -> None:
        await upload(*args, **kwargs)
        started.set()
        await asyncio.Event().wait()  # the run is cancelled here, after one file is stored

    registry._bucket.upload_from_stream_with_id = slow_upload  # type: ignore[method-assign]
    task = asyncio.create_task(registry.register("m", "1", FILES, {}))
    async with asyncio.timeout(10):
        await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await registry.versions() == []
    with pytest.raises(VersionNotFound):
        await registry.get("m@1")
    assert await stored_files(registry) == []  # cleaned up on cancel

    # A process killed there cannot clean up: its files stay, invisible, until cleanup.
    registry._bucket.upload_from_stream_with_id = upload  # type: ignore[method-assign]
    await registry._bucket.upload_from_stream("m@1/model.json", b"left by a killed run")
    assert await registry.versions() == []
    assert await registry.cleanup() == 1
    assert await stored_files(registry) == []
    # ... and the version registers normally afterwards.
    await registry.register("m", "1", FILES, {})
    assert (await registry.get("m@1"))[1] == FILES
    assert await registry.cleanup() == 0


async def test_cleanup_spares_recent_uploads(db: AsyncDatabase[dict[str, Any]]) -> None:
    registry = MongoModelRegistry(db)  # the default grace: another replica may be uploading
    await registry._bucket.upload_from_stream("m@1/model.json", b"uploading", metadata={})
    assert await registry.cleanup() == 0


async def test_changed_bytes_are_refused_naming_the_file(
    registry: MongoModelRegistry, db: AsyncDatabase[dict[str, Any]]
) -> None:
    await registry.register("m", "1", FILES, {})
    # Other bytes behind notes.md: the document is pointed at another stored file (nx-27017
    # does not let a test rewrite a chunk in place; real MongoDB would, with the same result).
    other = await registry._bucket.upload_from_stream("m@1/notes.md", b"tampered")
    await db["model_versions"].update_one(
        {"_id": "m@1", "files.name": "notes.md"}, {"$set": {"files.$.file_id": other}}
    )
    with pytest.raises(IntegrityError, match=r"m@1: file notes\.md"):
        await registry.get("m@1")


async def test_a_missing_file_is_refused_naming_it(registry: MongoModelRegistry) -> None:
    await registry.register("m", "1", FILES, {})
    stored = [f._id async for f in registry._bucket.find({"filename": "m@1/model.json"})]
    await registry._bucket.delete(stored[0])
    with pytest.raises(IntegrityError, match=r"m@1: file model\.json is missing"):
        await registry.get("m@1")


async def test_two_replicas_registering_the_same_version_at_once(
    db: AsyncDatabase[dict[str, Any]],
) -> None:
    a, b = MongoModelRegistry(db), MongoModelRegistry(db)
    first, second = await asyncio.gather(
        a.register("m", "1", FILES, {}), b.register("m", "1", FILES, {})
    )
    assert first.files == second.files
    assert len(await a.versions()) == 1
    assert (await b.get("m@1"))[1] == FILES
    assert len(await stored_files(a)) == len(FILES)  # the loser's files are removed


async def test_retention_keeps_every_version_that_was_ever_champion(
    registry: MongoModelRegistry, db: AsyncDatabase[dict[str, Any]]
) -> None:
    """Ever-champions come from the model_change history the gateway stores, in its layout."""

    def change(kind: ChangeKind, ref: str, by: str = "policy") -> ModelChange:
        return ModelChange.model_validate(
            {
                "symbol": "BTC",
                "interval": "4h",
                "kind": kind,
                "model": ModelRef.parse(ref),
                "by": by,
                "reason": "",
                "decided_at": T0,
            }
        )

    for day in range(6):
        await register_at(registry, f"dist@v{day}", day)
    await register_at(registry, "dist@seed", -1, status="bundled")
    await MongoEventStore(db).upsert(
        [
            change("promoted", "dist@v1"),  # champion, then demoted: still kept
            change("demoted", "naive@1"),
            change("gate_opened", "dist@v2"),  # the first champion of a coin
            change("registered", "dist@v3", by="trainer"),  # a challenger, never champion
            change("blocked", "dist@v4"),  # blocked: named, but not as champion
        ]
    )
    assert await registry.ever_champions() == {"dist@v1", "dist@v2", "naive@1"}
    assert sorted(await registry.retain(keep_last=1, protected=set())) == [
        "dist@v0",
        "dist@v3",
        "dist@v4",
    ]
    refs = [v.ref for v in await registry.versions()]
    assert sorted(refs) == ["dist@seed", "dist@v1", "dist@v2", "dist@v5"]
