"""The consume loop against a real broker that fails: connections cut with a message in
hand, consumers killed by the message they handle, queues left by an earlier version."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from pathlib import Path

import aio_pika
import pytest

from cryptocast_common.amqp import REASON_HEADER, AmqpBus
from cryptocast_common.events import Event
from cryptocast_common.settings import CommonSettings
from tests.factories import candle
from tests.relay import Relay
from tests.waiting import eventually


async def _dead_letters(url: str, settings: CommonSettings) -> list[aio_pika.IncomingMessage]:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.dead_letter_queue, durable=True)
        found = []
        while (message := await queue.get(fail=False)) is not None:
            found.append(message)
        await channel.close()  # nothing acked: the messages stay for the next look
        return found


async def _waiting(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


async def test_the_loop_survives_losing_the_broker_with_a_message_in_hand(
    common: CommonSettings,
) -> None:
    relay = Relay(common.amqp_url or "")
    await relay.start()
    bus = await AmqpBus.connect(relay.url, common)
    producer = await AmqpBus.connect(common.amqp_url or "", common)
    in_hand, release = asyncio.Event(), asyncio.Event()
    handled: list[Event] = []

    async def holds_the_first(events: list[Event]) -> list[Event]:
        if not release.is_set():
            in_hand.set()
            await release.wait()
        handled.extend(events)
        return []

    try:
        await bus.consume(common.queue_for("contract"), ["candle.#"], holds_the_first)
        await producer.publish([candle(0)])
        await asyncio.wait_for(in_hand.wait(), 10)
        await relay.stop()  # the broker is gone while candle(0) is in hand

        async def not_ready() -> bool:
            return not await _ready(bus)

        await eventually(not_ready, 10)
        release.set()  # the handler finishes; its ack cannot reach the broker
        await relay.start()
        await producer.publish([candle(1)])

        async def both_handled_again() -> bool:
            return handled.count(candle(0)) == 2 and candle(1) in handled

        await eventually(both_handled_again, 30)  # candle(0) was redelivered, not lost

        await eventually(lambda: _ready(bus), 10)
    finally:
        await bus.close()
        await producer.close()
        await relay.stop()
    assert await _waiting(common.amqp_url or "", common.queue_for("contract")) == 0
    assert await _dead_letters(common.amqp_url or "", common) == []


async def _ready(bus: AmqpBus) -> bool:
    try:
        await bus.ping()
    except ConnectionError:
        return False
    return True


CONSUMER_THAT_DIES = textwrap.dedent("""
    import asyncio, os, sys
    from cryptocast_common.amqp import AmqpBus
    from cryptocast_common.settings import CommonSettings

    async def main():
        settings = CommonSettings()
        bus = await AmqpBus.connect(settings.amqp_url, settings)

        async def handler(events):
            with open(sys.argv[1], "a") as log:
                for event in events:
                    log.write(event.symbol + "\\n")
                    log.flush()
                    if event.symbol == "KILL":
                        os._exit(3)  # the process dies with the message in hand
            return []

        await bus.consume(settings.queue_for("contract"), ["candle.#"], handler)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


@pytest.mark.parametrize("neighbours_first", [False, True])
async def test_a_message_that_kills_its_consumer_is_dead_lettered_after_max_attempts(
    common: CommonSettings, tmp_path: Path, neighbours_first: bool
) -> None:
    """Each delivery of the poison message kills the process; a supervisor restarts it.
    The count survives the restarts: after ``max_attempts`` deliveries it is dead-lettered,
    and the messages around it are handled."""
    url = common.amqp_url or ""
    neighbours = [candle(i) for i in range(5)]
    poison = candle(0, symbol="KILL")
    producer = await AmqpBus.connect(url, common)
    handled = tmp_path / "handled.txt"
    environment = {
        **os.environ,
        "CRYPTOCAST_AMQP_URL": url,
        "CRYPTOCAST_NAMESPACE": common.namespace,
        "CRYPTOCAST_MAX_ATTEMPTS": str(common.max_attempts),
        "CRYPTOCAST_RETRY_DELAY_SECONDS": str(common.retry_delay_seconds),
    }
    crashes = 0
    try:
        # Declare the queue, its bindings and delay queues before publishing.
        probe = await _start_consumer(handled, environment)
        await eventually(lambda: _consuming(url, common.queue_for("contract")), 30)
        probe.terminate()
        await asyncio.wait_for(probe.wait(), 10)
        order = [*neighbours, poison] if neighbours_first else [poison, *neighbours]
        await producer.publish(order)
        for _ in range(common.max_attempts + 2):
            process = await _start_consumer(handled, environment)
            try:
                code: int | None = await asyncio.wait_for(process.wait(), 8.0)
            except TimeoutError:
                code = None
                process.kill()
                await process.wait()
            if code == 3:
                crashes += 1
            elif code is None:
                break  # it lived: nothing left kills it
    finally:
        await producer.close()
    lines = handled.read_text().split()
    assert crashes == common.max_attempts
    assert lines.count("KILL") == common.max_attempts
    assert all(lines.count(c.symbol) >= 1 for c in neighbours)
    dead_letters = await _dead_letters(url, common)
    assert [(d.message_id, (d.headers or {}).get(REASON_HEADER)) for d in dead_letters] == [
        (
            poison.event_id,
            f"delivered {common.max_attempts} times without being settled "
            "(its consumer stopped while handling it)",
        )
    ]
    [dead] = dead_letters
    assert dead.message_id == poison.event_id
    reason = str((dead.headers or {}).get(REASON_HEADER))
    assert f"delivered {common.max_attempts} times without being settled" in reason


async def _consuming(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return False
        return bool(declared.declaration_result.consumer_count)


async def _start_consumer(log: Path, environment: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CONSUMER_THAT_DIES, str(log), env=environment
    )


async def test_a_classic_queue_from_an_earlier_version_is_migrated_keeping_its_messages(
    common: CommonSettings,
) -> None:
    url = common.amqp_url or ""
    queue = common.queue_for("contract")
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            common.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        old = await channel.declare_queue(
            queue, durable=True, arguments={"x-dead-letter-exchange": common.dead_letter_exchange}
        )
        await old.bind(exchange, "candle.#")
        for i in range(20):
            await exchange.publish(
                aio_pika.Message(
                    candle(i).to_json(),
                    content_type="application/json",
                    message_id=candle(i).event_id,
                ),
                routing_key=candle(i).routing_key,
            )
    bus = await AmqpBus.connect(url, common)
    producer = await AmqpBus.connect(url, common)
    handled: list[Event] = []

    async def record(events: list[Event]) -> list[Event]:
        handled.extend(events)
        return []

    try:
        await bus.consume(queue, ["candle.#"], record)
        await producer.publish([candle(20)])  # published after the migration: bound anew
        await eventually(lambda: _has_all(handled, 21), 20)
    finally:
        await bus.close()
        await producer.close()
    assert [e.event_id for e in handled] == [candle(i).event_id for i in range(21)]
    with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
        await _waiting(url, f"{queue}.migrating")  # the holding queue is gone


async def _has_all(handled: list[Event], count: int) -> bool:
    return len(handled) >= count


async def test_a_forged_delivery_count_on_a_classic_queue_is_ignored(
    common: CommonSettings,
) -> None:
    """Only quorum queues count deliveries; elsewhere ``x-delivery-count`` is whatever the
    publisher wrote, and the message is handled as any other."""
    bus = await AmqpBus.connect(common.amqp_url or "", common)
    handled: list[Event] = []

    async def record(events: list[Event]) -> list[Event]:
        handled.extend(events)
        return []

    try:
        await bus.consume(common.queue_for("contract"), ["candle.#"], record, exclusive=True)
        await bus.publish_raw(
            "candle.BTC.4h",
            candle(0).to_json(),
            candle(0).event_id,
            headers={"x-delivery-count": 2**62},
        )
        await eventually(lambda: _has_all(handled, 1), 10)
    finally:
        await bus.close()
    assert handled == [candle(0)]
