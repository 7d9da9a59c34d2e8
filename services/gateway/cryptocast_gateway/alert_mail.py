"""Alert emails: the mailer port, the SMTP adapter and the text of an alert's email."""

from __future__ import annotations

from email.message import EmailMessage
from typing import TYPE_CHECKING, Protocol

import aiosmtplib

from cryptocast_gateway.settings import GatewaySettings

if TYPE_CHECKING:  # for annotations only: alerts imports this module for the email text
    from cryptocast_gateway.alerts import Alert


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, settings: GatewaySettings) -> None:
        assert settings.smtp_host is not None
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        s = self.settings
        message["From"] = s.smtp_sender
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            timeout=30,
        )


def alert_subject(alert: Alert) -> str:
    """The email's subject, and the title of the alert's other notifications."""
    return f"CryptoCast Alert: {alert.symbol} is {alert.direction} ${alert.threshold:,.2f}"


def alert_email(alert: Alert, price: float) -> EmailMessage:
    message = EmailMessage()
    message["Message-ID"] = f"<alert-{alert.id}@cryptocast>"  # lets mail clients drop a copy
    message["To"] = alert.email
    message["Subject"] = alert_subject(alert)
    message.set_content(
        f"{alert.symbol} closed at ${price:,.4f}, {alert.direction} your threshold of "
        f"${alert.threshold:,.4f}.\n\nThis alert is now switched off; set a new one whenever "
        "you like.\n\nCryptoCast\n"
    )
    return message
