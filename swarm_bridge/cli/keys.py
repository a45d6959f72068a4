"""`swarm-bridge keys`: Ed25519 key pairs that sign task commands, and signing one record by hand."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]

EXIT_KEY = 2


def register(sub: Any) -> None:
    """Add the `keys` command and its subcommands."""
    parser = sub.add_parser("keys", help="generate command-signing keys, sign a record",
                            description="Ed25519 keys that sign task commands: the coordinator holds <id>.pem, "
                            "robots trust <id>.pub.pem (see docs/security.md).")
    commands = parser.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    generate = commands.add_parser("generate", help="write <id>.pem (private, mode 0600) and <id>.pub.pem")
    generate.add_argument("--key-id", required=True, help="1..64 of [A-Za-z0-9._-], e.g. coordinator-2026a")
    generate.add_argument("--out", type=Path, required=True, help="directory (created); files are never overwritten")
    generate.set_defaults(run=_generate)

    sign = commands.add_parser("sign", help="sign one record read from stdin; the signed frame goes to stdout")
    sign.add_argument("--key", type=Path, required=True, help="private key file <id>.pem")
    sign.add_argument("--key-id", help="key id (default: the key file's name without .pem)")
    sign.set_defaults(run=_sign)

    verify = commands.add_parser("verify", help="check a signed frame from stdin; the inner record goes to stdout")
    verify.add_argument("--trusted-keys", required=True, help="directory of <key_id>.pub.pem files")
    verify.set_defaults(run=_verify)


def _generate(args: argparse.Namespace) -> int:
    from swarm_bridge.codec import CodecError
    from swarm_bridge.commands import generate_key_pair

    try:
        private, public = generate_key_pair(args.key_id, args.out)
    except CodecError as exc:
        print(f"swarm-bridge keys generate: {exc}", file=sys.stderr)
        return EXIT_KEY
    except OSError as exc:
        print(f"swarm-bridge keys generate: {args.out}: {exc.strerror}", file=sys.stderr)
        return EXIT_KEY
    print(f"private key {private} (keep it on the coordinator only)\npublic key  {public} (copy it to every "
          "robot's commands.trusted_keys)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from swarm_bridge.codec import CodecError
    from swarm_bridge.commands import CommandSigner

    try:
        signer = CommandSigner.from_file(args.key, args.key_id)
        frame = signer.sign(sys.stdin.buffer.read())
    except CodecError as exc:
        print(f"swarm-bridge keys sign: {exc}", file=sys.stderr)
        return EXIT_KEY
    sys.stdout.buffer.write(frame)
    sys.stdout.buffer.flush()
    return 0


def _verify(args: argparse.Namespace) -> int:
    from swarm_bridge.codec import CodecError
    from swarm_bridge.codec.signing import open_signed
    from swarm_bridge.commands import CommandVerifier, Keyring

    try:
        verifier = CommandVerifier(Keyring.from_dir(args.trusted_keys), required=True)
        payload = sys.stdin.buffer.read()
        refusal, inner = verifier.verify(payload)
    except CodecError as exc:
        print(f"swarm-bridge keys verify: {exc}", file=sys.stderr)
        return EXIT_KEY
    if refusal is not None:
        print(f"swarm-bridge keys verify: refused ({refusal.value})", file=sys.stderr)
        return 1
    print(f"swarm-bridge keys verify: good signature by key {open_signed(payload).key_id}", file=sys.stderr)
    sys.stdout.buffer.write(inner)
    sys.stdout.buffer.flush()
    return 0
