"""The robot's side of command signing: `CommandVerifier` checks a down-route payload against a `Keyring`.

`CommandVerifier(Keyring.from_dir("trusted/"), required=True).verify(payload) -> (verdict or None, inner)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature

from swarm_bridge.codec.framing import DEFAULT_MAX_PAYLOAD
from swarm_bridge.codec.signing import is_signed, open_signed, signed_message
from swarm_bridge.commands.gate import Verdict
from swarm_bridge.commands.keys import Keyring

__all__ = ["CommandVerifier"]


@dataclass(frozen=True)
class CommandVerifier:
    """Checks a down-route payload's signature against a keyring; `required`: unsigned payloads are refused."""

    keyring: Keyring
    required: bool = False
    max_payload: int = DEFAULT_MAX_PAYLOAD

    def verify(self, payload: bytes) -> tuple[Verdict | None, bytes]:
        """(None, inner record) when it may pass: signed and valid, or unsigned while not required; else
        (UNSIGNED | UNKNOWN_KEY | BAD_SIGNATURE, payload). A malformed signed frame raises FramingError."""
        if not is_signed(payload):
            return (Verdict.UNSIGNED if self.required else None), bytes(payload)
        key_id, signature, inner = open_signed(payload, max_payload=self.max_payload)
        public = self.keyring.get(key_id)
        if public is None:
            return Verdict.UNKNOWN_KEY, inner
        try:
            public.verify(signature, signed_message(key_id, inner))
        except InvalidSignature:
            return Verdict.BAD_SIGNATURE, inner
        return None, inner
