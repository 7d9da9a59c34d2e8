"""Where alerts are kept: the store port, the in-memory fake and the MongoDB adapter. A
claim is one conditional write, so two gateway replicas never both take the same alert."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase

from cryptocast_gateway.alerts import Alert


class AlertStore(Protocol):
    async def add(self, alert: Alert) -> None: ...

    async def due(self, candles: Mapping[str, str]) -> list[Alert]:
        """The active alerts of these coins, and those the coin's candle (symbol -> candle id)
        triggered whose email is unsent."""
        ...

    async def deactivate(self, email: str, symbol: str) -> int:
        """Deactivate that email's active alerts for the coin; how many there were."""
        ...

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        """Mark the alert triggered by the candle if it is active, or already triggered by
        the same candle and unsent (the same write again); False otherwise."""
        ...

    async def mark_sent(self, alert_id: str) -> None: ...

    async def release(self, alert_id: str, candle_id: str) -> None:
        """Undo the candle's unsent claim: the alert is active again."""
        ...


def _claimable(alert: Alert, candle_id: str) -> bool:
    return alert.active or (alert.triggered_by == candle_id and alert.sent_at is None)


class InMemoryAlertStore:
    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}

    async def add(self, alert: Alert) -> None:
        self.alerts[alert.id] = alert

    async def due(self, candles: Mapping[str, str]) -> list[Alert]:
        return [
            a
            for a in self.alerts.values()
            if a.symbol in candles and _claimable(a, candles[a.symbol])
        ]

    def _set(self, alert_id: str, **changes: Any) -> None:
        self.alerts[alert_id] = replace(self.alerts[alert_id], **changes)

    async def deactivate(self, email: str, symbol: str) -> int:
        matching = [
            a.id
            for a in self.alerts.values()
            if (a.email, a.symbol, a.active) == (email, symbol, True)
        ]
        for alert_id in matching:
            self._set(alert_id, active=False)
        return len(matching)

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        if not _claimable(self.alerts[alert_id], candle_id):
            return False
        self._set(alert_id, active=False, triggered_by=candle_id)
        return True

    async def mark_sent(self, alert_id: str) -> None:
        self._set(alert_id, sent_at=datetime.now(UTC))

    async def release(self, alert_id: str, candle_id: str) -> None:
        if _claimable(self.alerts[alert_id], candle_id):
            self._set(alert_id, active=True, triggered_by=None)


class MongoAlertStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._alerts = db["alerts"]

    async def ensure_indexes(self) -> None:
        await self._alerts.create_index([("symbol", 1), ("active", 1)])

    async def add(self, alert: Alert) -> None:
        document = asdict(alert)
        document["_id"] = document.pop("id")
        await self._alerts.insert_one(document)

    @staticmethod
    def _claimable(triggered_by: str | dict[str, Any]) -> dict[str, Any]:
        """Active, or triggered by that candle (an id or an operator on ids) and unsent.

        Written so that the Mongo wire server reads it as MongoDB does: beside other fields it
        matched an ``$or`` not wrapped in an ``$and`` in updates whatever its clauses said (so
        a claimed alert was claimed again), and a bare ``None`` in a query with an ``$or``
        matched nothing (so a claim whose email never went out was never sent)."""
        unsent = {"triggered_by": triggered_by, "sent_at": {"$eq": None}}
        return {"$and": [{"$or": [{"active": True}, unsent]}]}

    async def due(self, candles: Mapping[str, str]) -> list[Alert]:
        """In one query for every coin of a batch (one per coin was a round trip per coin)."""
        query = {
            "symbol": {"$in": list(candles)},
            **self._claimable({"$in": list(candles.values())}),
        }
        alerts = []
        async for doc in self._alerts.find(query):
            doc["id"] = doc.pop("_id")
            doc["active"] = bool(doc["active"])  # some servers hand back stored booleans as 0/1
            alerts.append(Alert(**doc))
        return [alert for alert in alerts if _claimable(alert, candles[alert.symbol])]

    async def deactivate(self, email: str, symbol: str) -> int:
        result = await self._alerts.update_many(
            {"email": email, "symbol": symbol, "active": True}, {"$set": {"active": False}}
        )
        return result.modified_count

    async def claim(self, alert_id: str, candle_id: str) -> bool:
        result = await self._alerts.update_one(
            {"_id": alert_id, **self._claimable(candle_id)},
            {"$set": {"active": False, "triggered_by": candle_id}},
        )
        return result.matched_count == 1  # a repeated claim matches without modifying

    async def mark_sent(self, alert_id: str) -> None:
        await self._alerts.update_one({"_id": alert_id}, {"$set": {"sent_at": datetime.now(UTC)}})

    async def release(self, alert_id: str, candle_id: str) -> None:
        await self._alerts.update_one(
            {"_id": alert_id, "triggered_by": candle_id, "sent_at": None},
            {"$set": {"active": True, "triggered_by": None}},
        )
