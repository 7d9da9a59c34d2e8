"""The model registry every replica reads: artifact files and one metadata document per version.

A version is ``name@version`` (as configuration and events write it) and holds a few files
(a distribution model is one ``model.json``; an LSTM artifact is several files plus
``metadata.json``). The MongoDB adapter keeps the bytes in GridFS (bucket ``models``) and
one document per version in ``model_versions``::

    {_id: "dist-4h@20261203-56c93a37", name, version, created_at, status,
     files: [{name, sha256, size, file_id}], data: {...}, metrics: {...}, info: {...}}

``files`` is a list rather than ``{filename: sha256}`` because file names carry dots
(``model.json``), which MongoDB field names should not. What readers see is the metadata
document: it is written last, after every file is stored and read back with the right hash,
so a run that fails or is killed half-way leaves at most GridFS files no document points to
(``cleanup`` removes them). Readers check every file's hash again on ``get``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from bson import ObjectId
from gridfs import AsyncGridFSBucket
from gridfs.errors import NoFile
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from cryptocast_common.lifecycle import CHAMPION_KINDS

log = logging.getLogger(__name__)

BUCKET = "models"
VERSIONS = "model_versions"
CHANGES = "model_changes"  # where the gateway stores every model_change event
ORPHAN_GRACE = timedelta(hours=1)  # a register still uploading is not an orphan yet
# Files of an artifact folder that are its metadata, in the order they are looked for.
METADATA_FILES = ("metadata.json", "model.json")


class RegistryError(RuntimeError):
    """The registry cannot do what was asked; the message says which version and why."""


class VersionNotFound(RegistryError, LookupError):
    pass


class VersionConflict(RegistryError):
    """``name@version`` is already registered with other files."""


class IntegrityError(RegistryError):
    """A stored file's bytes do not match the hash recorded when it was registered."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_ref(ref: str) -> tuple[str, str]:
    name, _, version = ref.partition("@")
    if not name or not version or "/" in ref:
        raise RegistryError(f"model {ref!r} must be given as name@version")
    return name, version


@dataclass(frozen=True)
class ModelVersion:
    """One registered version; ``files`` maps each file name to its sha256."""

    name: str
    version: str
    created_at: datetime
    files: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "registered"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def build(
        cls, name: str, version: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        """``metadata``: optional ``created_at`` (datetime or ISO text), ``data`` (what it was
        trained on), ``metrics``, ``status``; every other key is kept in ``info``."""
        split_ref(f"{name}@{version}")
        if not files:
            raise RegistryError(f"{name}@{version}: a version needs at least one file")
        for filename in files:
            if not filename or "/" in filename or filename.startswith("."):
                raise RegistryError(f"{name}@{version}: file name {filename!r} is not allowed")
        known = {"created_at", "data", "metrics", "status"}
        return cls(
            name=name,
            version=version,
            created_at=_utc(metadata.get("created_at") or datetime.now(UTC)),
            files={filename: sha256_hex(body) for filename, body in sorted(files.items())},
            data=dict(metadata.get("data") or {}),
            metrics=dict(metadata.get("metrics") or {}),
            status=str(metadata.get("status") or "registered"),
            info={k: v for k, v in metadata.items() if k not in known},
        )


def _utc(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise RegistryError(f"created_at must be a datetime, got {value!r}")
    return as_stored(value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))


def as_stored(moment: datetime) -> datetime:
    """The moment as MongoDB keeps it, to the millisecond: a time read back must equal the
    one written (the fakes and the adapters agree, an event's id derived from it holds)."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _check(ref: str, files: Mapping[str, str], bodies: Mapping[str, bytes]) -> None:
    for filename, expected in files.items():
        if filename not in bodies:
            raise IntegrityError(f"{ref}: file {filename} is missing from the registry")
        actual = sha256_hex(bodies[filename])
        if actual != expected:
            raise IntegrityError(
                f"{ref}: file {filename} has sha256 {actual}, the registry recorded {expected}"
            )


def _conflict(existing: ModelVersion, new: ModelVersion) -> VersionConflict:
    return VersionConflict(
        f"{new.ref} is already registered with other files "
        f"({sorted(existing.files.items())} != {sorted(new.files.items())})"
    )


class ModelRegistry(Protocol):
    async def register(
        self, name: str, version: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        """Store the files, then make the version visible. The same files again: the
        existing version, unchanged. Other files under a registered version: VersionConflict."""
        ...

    async def get(self, ref: str) -> tuple[ModelVersion, dict[str, bytes]]:
        """The version and its files, each checked against its hash (IntegrityError)."""
        ...

    async def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Visible versions, oldest first (by created_at, then version)."""
        ...

    async def retain(self, keep_last: int, protected: set[str]) -> list[str]:
        """Keep the last ``keep_last`` versions of each name, every ``protected`` ref, every
        bundled version and every version that was ever champion (``ever_champions``);
        remove the rest, return them."""
        ...

    async def ever_champions(self) -> set[str]:
        """Every version the lifecycle policy made champion of some coin, at any time."""
        ...

    async def cleanup(self) -> int:
        """Remove stored files that no visible version points to; return how many."""
        ...

    async def seed_from_folder(self, folder: Path) -> list[ModelVersion]:
        """Register every artifact under ``folder`` (see ``seed_from_folder``)."""
        ...


class _Seeding:
    async def seed_from_folder(self, folder: Path) -> list[ModelVersion]:
        return await seed_from_folder(self, folder)  # type: ignore[arg-type]  # mixed into registries


def _select_removals(
    versions: Iterable[ModelVersion], keep_last: int, protected: set[str]
) -> list[ModelVersion]:
    if keep_last < 0:
        raise RegistryError("keep_last must be 0 or more")
    by_name: dict[str, list[ModelVersion]] = {}
    for version in versions:
        by_name.setdefault(version.name, []).append(version)
    doomed = []
    for group in by_name.values():
        kept_newest = group[len(group) - keep_last :] if keep_last else []
        doomed += [
            v
            for v in group
            if v not in kept_newest and v.ref not in protected and v.status != "bundled"
        ]
    return doomed


def _order(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    return sorted(versions, key=lambda v: (v.created_at, v.version))


class InMemoryModelRegistry(_Seeding):
    """The fake: the same rules in a dict, for unit tests and the in-process pipeline."""

    def __init__(self) -> None:
        self._versions: dict[str, ModelVersion] = {}
        self._files: dict[str, dict[str, bytes]] = {}
        self.champions: set[str] = set()  # what the model_change history would say

    async def register(
        self, name: str, version: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        new = ModelVersion.build(name, version, files, metadata)
        existing = self._versions.get(new.ref)
        if existing is not None:
            if existing.files != new.files:
                raise _conflict(existing, new)
            return existing
        self._files[new.ref] = dict(files)
        self._versions[new.ref] = new
        return new

    async def get(self, ref: str) -> tuple[ModelVersion, dict[str, bytes]]:
        split_ref(ref)
        found = self._versions.get(ref)
        if found is None:
            raise VersionNotFound(f"model {ref} is not in the registry")
        bodies = dict(self._files[ref])
        _check(ref, found.files, bodies)
        return found, bodies

    async def versions(self, name: str | None = None) -> list[ModelVersion]:
        return _order(v for v in self._versions.values() if name is None or v.name == name)

    async def retain(self, keep_last: int, protected: set[str]) -> list[str]:
        removed = []
        kept = protected | await self.ever_champions()
        for version in _select_removals(await self.versions(), keep_last, kept):
            del self._versions[version.ref]
            del self._files[version.ref]
            removed.append(version.ref)
        return removed

    async def ever_champions(self) -> set[str]:
        return set(self.champions)

    async def cleanup(self) -> int:
        return 0  # nothing is stored before it is visible

    def corrupt(self, ref: str, filename: str, body: bytes) -> None:
        """Tests: replace a stored file's bytes behind the registry's back."""
        self._files[ref][filename] = body


class MongoModelRegistry(_Seeding):
    """GridFS bucket ``models`` for the bytes, ``model_versions`` for the documents."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        bucket: str = BUCKET,
        collection: str = VERSIONS,
        orphan_grace: timedelta = ORPHAN_GRACE,
    ) -> None:
        self._db = db
        self._bucket = AsyncGridFSBucket(db, bucket_name=bucket)
        self._versions = db[collection]
        self.orphan_grace = orphan_grace

    async def ensure_indexes(self) -> None:
        await self._versions.create_index([("name", 1), ("created_at", 1)])

    async def ping(self) -> None:
        await self._db.command("ping")

    async def register(
        self, name: str, version: str, files: Mapping[str, bytes], metadata: Mapping[str, Any]
    ) -> ModelVersion:
        new = ModelVersion.build(name, version, files, metadata)
        existing = await self._find(new.ref)
        if existing is not None:
            if existing[0].files != new.files:
                raise _conflict(existing[0], new)
            return existing[0]
        ids: dict[str, ObjectId] = {}
        try:
            for filename, body in sorted(files.items()):
                # The id is chosen first, so that a file cancelled mid-upload is removed too.
                ids[filename] = ObjectId()
                await self._bucket.upload_from_stream_with_id(
                    ids[filename],
                    f"{new.ref}/{filename}",
                    body,
                    metadata={"ref": new.ref, "file": filename, "sha256": new.files[filename]},
                )
            stored = {filename: await self._read(file_id) for filename, file_id in ids.items()}
            _check(new.ref, new.files, stored)
            document = _to_document(new, ids, {k: len(v) for k, v in files.items()})
            await self._versions.insert_one(document)
        except DuplicateKeyError:
            # Another replica registered the same version meanwhile: its files are the ones
            # the document points to, ours are not needed.
            await self._delete_files(ids.values())
            winner = await self._find(new.ref)
            if winner is None or winner[0].files != new.files:
                raise _conflict(winner[0] if winner else new, new) from None
            return winner[0]
        except BaseException:
            # Cancelled or failed before the document: nothing is visible; try to leave no
            # bytes either (cleanup removes whatever a killed process left).
            try:
                await self._delete_files(ids.values())
            except Exception:
                log.warning("could not remove the files of an unfinished register of %s", new.ref)
            raise
        log.info("model registered", extra={"model": new.ref, "files": len(files)})
        return new

    async def get(self, ref: str) -> tuple[ModelVersion, dict[str, bytes]]:
        split_ref(ref)
        found = await self._find(ref)
        if found is None:
            raise VersionNotFound(f"model {ref} is not in the registry")
        version, ids = found
        bodies = {}
        for filename, file_id in ids.items():
            try:
                bodies[filename] = await self._read(file_id)
            except NoFile:
                raise IntegrityError(
                    f"{ref}: file {filename} is missing from the registry"
                ) from None
        _check(ref, version.files, bodies)
        return version, bodies

    async def versions(self, name: str | None = None) -> list[ModelVersion]:
        query = {} if name is None else {"name": name}
        cursor = self._versions.find(query).sort([("created_at", 1), ("version", 1)])
        return _order([_from_document(d)[0] async for d in cursor])

    async def retain(self, keep_last: int, protected: set[str]) -> list[str]:
        removed = []
        kept = protected | await self.ever_champions()
        for version in _select_removals(await self.versions(), keep_last, kept):
            document = await self._versions.find_one_and_delete({"_id": version.ref})
            if document is not None:  # invisible first; its files go next (or to cleanup)
                await self._delete_files(_from_document(document)[1].values())
                removed.append(version.ref)
        if removed:
            log.info("model versions removed", extra={"models": removed})
        return removed

    async def ever_champions(self) -> set[str]:
        """From the model_change history the gateway stores (collection ``model_changes``, the
        events as published): every model the policy named as a coin's champion."""
        query = {"by": "policy", "kind": {"$in": sorted(CHAMPION_KINDS)}}
        cursor = self._db[CHANGES].find(query, {"model": 1})
        return {f"{d['model']['name']}@{d['model']['version']}" async for d in cursor}

    async def cleanup(self) -> int:
        referenced: set[ObjectId] = set()
        async for document in self._versions.find({}, {"files": 1}):
            referenced |= {f["file_id"] for f in document.get("files", [])}
        before = datetime.now(UTC) - self.orphan_grace
        # Through the bucket's own find: nx-27017 maps GridFS collections onto tables of its
        # own and answers the GridFS operations on them, not arbitrary queries.
        orphans = [
            f._id
            async for f in self._bucket.find({"uploadDate": {"$lt": before}})
            if f._id not in referenced
        ]
        await self._delete_files(orphans)
        if orphans:
            log.info("orphan model files removed", extra={"count": len(orphans)})
        return len(orphans)

    async def _find(self, ref: str) -> tuple[ModelVersion, dict[str, ObjectId]] | None:
        document = await self._versions.find_one({"_id": ref})
        return None if document is None else _from_document(document)

    async def _read(self, file_id: ObjectId) -> bytes:
        stream = await self._bucket.open_download_stream(file_id)
        return await stream.read()

    async def _delete_files(self, ids: Iterable[ObjectId]) -> None:
        for file_id in ids:
            try:
                await self._bucket.delete(file_id)
            except NoFile:
                pass
            except OperationFailure as error:  # nx-27017's answer for a file already gone
                if "not found" not in str(error):
                    raise


def _to_document(
    version: ModelVersion, ids: Mapping[str, ObjectId], sizes: Mapping[str, int]
) -> dict[str, Any]:
    return {
        "_id": version.ref,
        "name": version.name,
        "version": version.version,
        "created_at": version.created_at,
        "status": version.status,
        "files": [
            {"name": n, "sha256": h, "size": sizes[n], "file_id": ids[n]}
            for n, h in version.files.items()
        ],
        "data": version.data,
        "metrics": version.metrics,
        "info": version.info,
    }


def _from_document(document: Mapping[str, Any]) -> tuple[ModelVersion, dict[str, ObjectId]]:
    files = document.get("files", [])
    version = ModelVersion(
        name=document["name"],
        version=document["version"],
        created_at=_utc(document["created_at"]),
        files={f["name"]: f["sha256"] for f in files},
        data=document.get("data") or {},
        metrics=document.get("metrics") or {},
        status=document.get("status", "registered"),
        info=document.get("info") or {},
    )
    return version, {f["name"]: f["file_id"] for f in files}


def read_artifact_folder(folder: Path) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of ``<name>/<version>/`` and the registry metadata its own metadata file
    (``metadata.json``, else a distribution's ``model.json``) gives: created_at, the data
    it was trained on, its metrics (``metrics`` or ``test_metrics``)."""
    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    if not files:
        raise RegistryError(f"{folder}: no files")
    own: dict[str, Any] = {}
    for candidate in METADATA_FILES:
        if candidate in files:
            own = json.loads(files[candidate])
            break
    metadata: dict[str, Any] = {
        "data": own.get("data") or {},
        "metrics": own.get("metrics") or own.get("test_metrics") or {},
        "kind": own.get("kind", "lstm" if "model.keras" in files else "unknown"),
        "interval": own.get("interval"),
        "window": own.get("window"),
    }
    if own.get("created_at"):
        metadata["created_at"] = own["created_at"]
    return files, metadata


def _version_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise RegistryError(f"no artifact folder at {folder}")
    return sorted(p for p in folder.glob("*/*") if p.is_dir())


async def seed_from_folder(
    registry: ModelRegistry, folder: Path, status: str = "bundled"
) -> list[ModelVersion]:
    """Register every ``<folder>/<name>/<version>/`` artifact (the bundled ones on first
    start); already registered versions with the same files are left as they are."""
    seeded = []
    for version_dir in await asyncio.to_thread(_version_dirs, folder):
        files, metadata = await asyncio.to_thread(read_artifact_folder, version_dir)
        seeded.append(
            await registry.register(
                version_dir.parent.name, version_dir.name, files, metadata | {"status": status}
            )
        )
    return seeded


__all__ = [
    "BUCKET",
    "VERSIONS",
    "InMemoryModelRegistry",
    "IntegrityError",
    "ModelRegistry",
    "ModelVersion",
    "MongoModelRegistry",
    "RegistryError",
    "VersionConflict",
    "VersionNotFound",
    "read_artifact_folder",
    "seed_from_folder",
    "sha256_hex",
    "split_ref",
]
