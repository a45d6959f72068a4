"""Down-route commands on the robot and the coordinator: which ones a robot accepts, and who signed them.

  gate      CommandGate, Verdict: addressed to this robot, not expired, not seen before, issued recently;
  hold      CommandHold: accepted commands wait (bounded) for a ROS subscriber instead of being lost;
  keys      Keyring, key files, generate_key_pair: the signers a robot trusts;
  signer    CommandSigner: the coordinator signs a record (the frame is swarm_bridge.codec.signing);
  verifier  CommandVerifier: the robot checks a payload's signature against its keyring.
The codec knows only the bytes of a signed frame and never imports from here.
"""

from swarm_bridge.commands.errors import GateSettingError
from swarm_bridge.commands.gate import CommandGate, Verdict
from swarm_bridge.commands.hold import CommandHold, Held
from swarm_bridge.commands.keys import PRIVATE_SUFFIX, PUBLIC_SUFFIX, Keyring, KeyringError, generate_key_pair
from swarm_bridge.commands.signer import CommandSigner
from swarm_bridge.commands.verifier import CommandVerifier

__all__ = [
    "PRIVATE_SUFFIX",
    "PUBLIC_SUFFIX",
    "CommandGate",
    "CommandHold",
    "CommandSigner",
    "CommandVerifier",
    "GateSettingError",
    "Held",
    "Keyring",
    "KeyringError",
    "Verdict",
    "generate_key_pair",
]
