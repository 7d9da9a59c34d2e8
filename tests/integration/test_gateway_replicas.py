"""Two gateway replicas: each event stored once, both serve the newest prediction."""

from typing import Any

import httpx
from pymongo import AsyncMongoClient

from cryptocast_common.amqp import AmqpBus
from cryptocast_common.settings import CommonSettings
from cryptocast_gateway.bootstrap import bootstrap as gateway
from cryptocast_gateway.settings import GatewaySettings
from tests.factories import prediction
from tests.waiting import eventually


async def test_replicas_share_the_store_and_each_keeps_the_latest(common: CommonSettings) -> None:
    url = common.amqp_url or ""
    buses = [await AmqpBus.connect(url, common) for _ in range(2)]
    replicas = [await gateway(common, GatewaySettings(port=0), bus=bus) for bus in buses]
    producer = await AmqpBus.connect(url, common)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(common.mongo_url)
    try:
        for replica in replicas:
            await replica.start()
        predictions = [prediction(i, base=100 + i, predicted=101 + i) for i in range(20)]
        await producer.publish(predictions)

        async def all_stored() -> bool:
            count = await mongo[common.mongo_db].predictions.count_documents({})
            return count == len(predictions)

        await eventually(all_stored, within=30)
        newest = predictions[-1].event_id
        for replica in replicas:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{replica.port}") as http:

                async def serves_newest(http: httpx.AsyncClient = http) -> bool:
                    return (await http.get("/btc")).json()["_id"] == newest

                await eventually(serves_newest, within=10)
    finally:
        for replica, bus in zip(replicas, buses, strict=True):
            await replica.stop()
            await bus.close()
        await producer.close()
        await mongo.drop_database(common.mongo_db)
        await mongo.close()
