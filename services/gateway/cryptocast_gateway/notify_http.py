"""The notification channels over HTTP (httpx): a signed JSON webhook, Telegram's Bot API
``sendMessage`` and a Discord incoming webhook. Each ``send`` is one request; retries,
timeouts and counting are ``ChannelNotifier``'s. Redirects are not followed, and error
messages never carry the URL (Telegram's and Discord's hold their tokens)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from cryptocast_gateway.notify import (
    Channel,
    ChannelNotifier,
    Count,
    Notification,
    PermanentFailure,
    RetryPolicy,
    WebhookTarget,
    public_address,
    public_host,
    signed_headers,
)
from cryptocast_gateway.settings import GatewaySettings

RETRIED_STATUSES = frozenset({408, 425, 429})
TELEGRAM_MAX_CHARS = 4096
DISCORD_MAX_CHARS = 2000


class DeliveryError(Exception):
    """An answer worth trying again (5xx, 408, 425, 429)."""


def check_answer(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status >= 500 or status in RETRIED_STATUSES:
        raise DeliveryError(f"HTTP {status}")
    raise PermanentFailure(f"HTTP {status}")  # 3xx (not followed) and the other 4xx


async def require_public(url: str) -> None:
    """Refuse a URL whose host resolves to any non-public address: an alert's webhook is
    given by whoever signed up, and must not reach the gateway's own network."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not public_host(host):
        raise PermanentFailure("webhook host is not public")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        if not public_address(ipaddress.ip_address(sockaddr[0])):
            raise PermanentFailure("webhook host resolves to a non-public address")


@dataclass
class WebhookChannel:
    client: httpx.AsyncClient
    url: str
    secret: bytes = field(repr=False)
    name: str = "webhook"
    public_only: bool = False

    async def send(self, notification: Notification) -> None:
        if self.public_only:
            await require_public(self.url)
        body = notification.body()
        headers = signed_headers(self.secret, notification, body)
        check_answer(await self.client.post(self.url, content=body, headers=headers))


@dataclass
class TelegramChannel:
    client: httpx.AsyncClient
    api_url: str
    token: str = field(repr=False)
    chat_id: str
    name: str = "telegram"

    async def send(self, notification: Notification) -> None:
        response = await self.client.post(
            f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage",
            json={
                "chat_id": self.chat_id,
                "text": notification.message[:TELEGRAM_MAX_CHARS],
                "disable_web_page_preview": True,
            },
        )
        check_answer(response)


@dataclass
class DiscordChannel:
    client: httpx.AsyncClient
    url: str = field(repr=False)
    name: str = "discord"

    async def send(self, notification: Notification) -> None:
        response = await self.client.post(
            self.url,
            json={
                "content": notification.message[:DISCORD_MAX_CHARS],
                "allowed_mentions": {"parse": []},  # an alert's text never pings @everyone
            },
        )
        check_answer(response)


def build_notifier(
    settings: GatewaySettings, client: httpx.AsyncClient, count: Count
) -> ChannelNotifier | None:
    """The channels the settings configure; None when there are none and alerts may not
    have webhooks of their own."""
    s = settings
    secret = s.webhook_secret.get_secret_value().encode() if s.webhook_secret else b""
    channels: list[Channel] = [WebhookChannel(client, url, secret) for url in s.webhook_urls]
    if s.telegram_bot_token and s.telegram_chat_id:
        token = s.telegram_bot_token.get_secret_value()
        channels.append(TelegramChannel(client, s.telegram_api_url, token, s.telegram_chat_id))
    if s.discord_webhook_url:
        channels.append(DiscordChannel(client, s.discord_webhook_url.get_secret_value()))
    if not channels and not s.alert_webhooks:
        return None

    def alert_webhook(target: WebhookTarget) -> Channel:
        return WebhookChannel(
            client,
            target.url,
            target.secret.encode(),
            name="alert_webhook",
            public_only=not s.alert_webhook_allow_private,
        )

    policy = RetryPolicy(
        s.notify_attempts,
        s.notify_backoff_seconds,
        s.notify_max_backoff_seconds,
        s.notify_timeout_seconds,
    )
    return ChannelNotifier(channels, alert_webhook if s.alert_webhooks else None, policy, count)


def notify_client(settings: GatewaySettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=settings.notify_timeout_seconds,
        follow_redirects=False,
        headers={"User-Agent": "CryptoCast-Notify/1"},
        trust_env=False,  # no proxy from the environment between the gateway and a webhook
    )
